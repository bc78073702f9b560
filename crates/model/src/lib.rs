//! Pure nouns of duoprov: registry subjects, folders, groups and memberships, the names that
//! identify them and the rules that make a name valid. No I/O lives here, so the planner and the
//! stores can share these types without pulling in a runtime.
