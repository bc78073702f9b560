//! The registry's error type. Every variant names the object at fault; database errors carry
//! what the store was doing, and never a connection string.

use duoprov_model::ValidationErrors;

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// Input that breaks the registry's rules, every problem listed with its object and field.
    #[error("{0}")]
    Invalid(ValidationErrors),
    /// The object named does not exist.
    #[error("{object} does not exist")]
    NotFound { object: String },
    /// The change was refused: it would break an invariant (a cycle, a folder that is not empty).
    #[error("{0}")]
    Refused(String),
    /// The registry URL or its options cannot be used.
    #[error("registry URL: {0}")]
    Url(String),
    /// The registry server could not be reached as configured (a TLS failure, explained).
    #[error("cannot connect to the PostgreSQL registry: {0}")]
    Connect(String),
    /// The database failed while the store was doing `context`.
    #[error("registry database error while {context}: {source}")]
    Database {
        context: String,
        #[source]
        source: sqlx::Error,
    },
    /// A schema migration failed.
    #[error("registry schema migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl RegistryError {
    pub(crate) fn db(context: impl Into<String>) -> impl FnOnce(sqlx::Error) -> RegistryError {
        let context = context.into();
        move |source| RegistryError::Database { context, source }
    }
}

impl From<ValidationErrors> for RegistryError {
    fn from(e: ValidationErrors) -> Self {
        RegistryError::Invalid(e)
    }
}

impl From<duoprov_model::ValidationError> for RegistryError {
    fn from(e: duoprov_model::ValidationError) -> Self {
        RegistryError::Invalid(e.into())
    }
}

pub type Result<T, E = RegistryError> = std::result::Result<T, E>;
