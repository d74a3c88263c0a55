//! Typed ids, so that a run id is never passed where a job id is expected.

use std::fmt;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(u64);

        impl $name {
            /// `None` for zero: dbt Cloud ids start at 1.
            pub fn new(id: u64) -> Option<$name> {
                (id > 0).then_some($name(id))
            }

            pub fn get(self) -> u64 {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }
    };
}

id_type!(
    /// A dbt Cloud account.
    AccountId
);
id_type!(
    /// A job definition in an account.
    JobId
);
id_type!(
    /// One run of a job.
    RunId
);
