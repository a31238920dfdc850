//! Spin's variables (`[component.x.variables]` in `spin.toml`) as a [`Variables`]
//! source: the only reader of `fermyon:spin/variables@2.0.0`, which Spin 4 serves to
//! every component. It is bound here, synchronous as the configuration code is:
//! spin-sdk 7 binds only the async `spin:variables@3.0.0`.
//!
//! A variable's value is read from the runtime once per instance and kept: Spin's
//! variables are fixed for the life of the application, and a reused instance (up to
//! 128 requests under Spin 4.1) would otherwise pay a host call per variable per
//! request. Only values are kept (defined or undefined), never an error: a provider
//! that fails is asked again by the next request.

use std::cell::RefCell;
use std::collections::HashMap;

use crate::config::{ConfigError, Variables};

/// The component's Spin variables (`[component.x.variables]` in `spin.toml`).
#[derive(Debug, Default, Clone, Copy)]
pub struct SpinVariables;

thread_local! {
    /// Instance state, configuration only: each variable's value as the runtime gave it.
    static READ: RefCell<HashMap<&'static str, Option<String>>> = RefCell::default();
}

impl Variables for SpinVariables {
    fn get(&self, name: &'static str) -> Result<Option<String>, ConfigError> {
        if let Some(value) = READ.with(|read| read.borrow().get(name).cloned()) {
            return Ok(value);
        }
        let value = match bindings::fermyon::spin::variables::get(name) {
            Ok(value) => Some(value),
            Err(bindings::fermyon::spin::variables::Error::Undefined(_)) => None,
            Err(other) => {
                return Err(ConfigError::Invalid {
                    name,
                    reason: format!("{other:?}"),
                });
            }
        };
        READ.with(|read| read.borrow_mut().insert(name, value.clone()));
        Ok(value)
    }
}

#[allow(missing_docs, clippy::all)]
mod bindings {
    wit_bindgen::generate!({
        world: "variables",
        path: "wit",
        generate_all,
    });
}
