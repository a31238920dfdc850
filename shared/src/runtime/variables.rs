//! Spin's variables (`[component.x.variables]` in `spin.toml`) as a [`Variables`]
//! source: the only reader of `spin:variables`.

use crate::config::{ConfigError, Variables};

/// The component's Spin variables (`[component.x.variables]` in `spin.toml`).
#[derive(Debug, Default, Clone, Copy)]
pub struct SpinVariables;

impl Variables for SpinVariables {
    fn get(&self, name: &'static str) -> Result<Option<String>, ConfigError> {
        match spin_sdk::variables::get(name) {
            Ok(value) => Ok(Some(value)),
            Err(spin_sdk::variables::Error::Undefined(_)) => Ok(None),
            Err(other) => Err(ConfigError::Invalid {
                name,
                reason: format!("{other:?}"),
            }),
        }
    }
}
