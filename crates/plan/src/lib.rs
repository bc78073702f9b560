//! The planner: turns what a provisioner selects from the registry and what Duo holds into an
//! exact, ordered plan of Duo operations, each with its reason, and checks it against the safety
//! rules. Pure and synchronous: no runtime, no network, no database.
//!
//! Flow: [`Mapping`] (compiled field templates) + [`duoprov_model::ProvisionerSelection`] →
//! [`DesiredState`] → [`build_plan`] against a [`duoprov_model::DuoSnapshot`] and the remembered
//! [`duoprov_model::Links`] under a [`Policy`] → [`Plan`] → [`safety::check`].

pub mod admins;
pub mod desired;
pub mod error;
pub mod fingerprint;
pub mod mapping;
pub mod plan;
pub mod policy;
pub mod render;
pub mod safety;

pub use admins::{plan_admins, AdminInputs, AdminOp, AdminPlan, AdminRemoveMode, AdminRoles, EmailAttribute, DUO_ADMIN_ROLES};
pub use desired::{DesiredGroup, DesiredState, DesiredUser};
pub use error::{ErrorCode, ObjectError};
pub use mapping::{Mapping, MappingConfig, MappingError};
pub use plan::{build_plan, Adoption, FieldChange, GroupField, GroupRef, Op, Plan, PlannedOp, Provenance, UserField, UserRef};
pub use policy::{DeletePolicy, Policy, Thresholds, UserDeleteMode};
