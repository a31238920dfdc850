//! Spin's variables: application variables resolved from providers, and component
//! variables that are templates over them (`"{{ db_url }}"`).
//!
//! Providers are consulted in Spin's order: `--variable name=value` first, then the
//! environment (`SPIN_VARIABLE_<NAME>`), then the variable's default. A required
//! variable that no provider can resolve stops start-up with Spin's message
//! `provider error: no provider resolved required variable(s): [Key("name")]`. A component asking for a
//! variable its manifest section does not list gets `undefined`, as in Spin.

use std::collections::{BTreeMap, HashMap};

use anyhow::{anyhow, bail};

use crate::manifest::Manifest;

/// Where values come from, highest precedence first.
#[derive(Default, Clone)]
pub struct VariableProviders {
    /// `--variable name=value` (and what a test passes).
    pub explicit: HashMap<String, String>,
    /// Look up `SPIN_VARIABLE_<NAME>` in the process environment (the binary does;
    /// tests do not, so that they cannot pick up a developer's shell).
    pub environment: bool,
    /// Extra `SPIN_VARIABLE_<NAME>` values, as read from a `.env` file.
    pub dotenv: HashMap<String, String>,
}

impl std::fmt::Debug for VariableProviders {
    // Values may be secrets: print names only.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VariableProviders")
            .field("explicit", &self.explicit.keys().collect::<Vec<_>>())
            .field("environment", &self.environment)
            .field("dotenv", &self.dotenv.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl VariableProviders {
    fn lookup(&self, name: &str) -> Option<String> {
        if let Some(value) = self.explicit.get(name) {
            return Some(value.clone());
        }
        let env_key = format!("SPIN_VARIABLE_{}", name.to_ascii_uppercase());
        if self.environment
            && let Ok(value) = std::env::var(&env_key)
        {
            return Some(value);
        }
        self.dotenv.get(&env_key).cloned()
    }
}

/// Checks a variable name as Spin does: lower-case ASCII letters, digits and single
/// underscores, starting with a letter and ending with a letter or digit.
pub fn validate_key(key: &str) -> anyhow::Result<()> {
    let reason = if key.is_empty() {
        Some("must not be empty".to_string())
    } else if let Some(invalid) = key
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_'))
    {
        Some(format!(
            "invalid character {invalid:?}. Variable names may contain only lower-case letters, numbers, and underscores."
        ))
    } else if !key.as_bytes()[0].is_ascii_lowercase() {
        Some("must start with a lowercase ASCII letter".to_string())
    } else if !key.as_bytes()[key.len() - 1].is_ascii_alphanumeric() {
        Some("must end with a lowercase ASCII letter or digit".to_string())
    } else if key.contains("__") {
        Some("must not contain multiple consecutive underscores".to_string())
    } else {
        None
    };
    match reason {
        Some(reason) => Err(anyhow!("{key:?}: {reason}")),
        None => Ok(()),
    }
}

/// One piece of a template.
#[derive(Debug, Clone, PartialEq)]
enum Part {
    Literal(String),
    Variable(String),
}

/// A string with `{{ name }}` expressions, parsed as Spin parses them.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    parts: Vec<Part>,
}

impl Template {
    /// Parses `text`; an unclosed `{{` is an error.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let mut parts = Vec::new();
        let mut rest = text;
        while !rest.is_empty() {
            if let Some(after_open) = rest.strip_prefix("{{") {
                let Some((expression, after_close)) = after_open.split_once("}}") else {
                    bail!("invalid template: unmatched '{{{{' in template");
                };
                parts.push(Part::Variable(expression.trim().to_string()));
                rest = after_close;
            } else {
                let end = rest.find("{{").unwrap_or(rest.len());
                parts.push(Part::Literal(rest[..end].to_string()));
                rest = &rest[end..];
            }
        }
        Ok(Self { parts })
    }

    /// Whether the template has no expressions.
    pub fn is_literal(&self) -> bool {
        self.parts
            .iter()
            .all(|part| matches!(part, Part::Literal(_)))
    }

    /// The variable names the template refers to.
    pub fn variables(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|part| match part {
            Part::Variable(name) => Some(name.as_str()),
            Part::Literal(_) => None,
        })
    }

    /// The template with every expression replaced by its value.
    pub fn render(&self, values: &HashMap<String, String>) -> anyhow::Result<String> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Literal(text) => out.push_str(text),
                Part::Variable(name) => out.push_str(
                    values
                        .get(name)
                        .ok_or_else(|| anyhow!("invalid variable name: {name}"))?,
                ),
            }
        }
        Ok(out)
    }
}

/// Why `fermyon:spin/variables.get` failed, with Spin's texts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GetError {
    /// The name is not a valid variable name.
    InvalidName(String),
    /// The component has no such variable.
    Undefined(String),
}

/// Every variable of the application, resolved once at start-up.
#[derive(Clone)]
pub struct ResolvedVariables {
    /// Application variables by name.
    app: HashMap<String, String>,
    /// Component id → variable name → resolved value.
    components: HashMap<String, BTreeMap<String, String>>,
}

impl std::fmt::Debug for ResolvedVariables {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ResolvedVariables { [redacted] }")
    }
}

impl ResolvedVariables {
    /// Resolves the manifest's variables from `providers`, failing as Spin fails.
    pub fn resolve(manifest: &Manifest, providers: &VariableProviders) -> anyhow::Result<Self> {
        // Templates are checked before values, as Spin validates them at load time.
        let mut templates = HashMap::new();
        for (id, component) in &manifest.components {
            let mut parsed = BTreeMap::new();
            for (name, text) in &component.variables {
                validate_key(name).map_err(|error| anyhow!("invalid variable name: {error}"))?;
                let template = Template::parse(text)?;
                for referenced in template.variables() {
                    if !manifest.variables.contains_key(referenced) {
                        bail!("invalid template: unknown variable {referenced:?}");
                    }
                }
                parsed.insert(name.clone(), template);
            }
            templates.insert(id.clone(), parsed);
        }

        let mut missing: Vec<&str> = manifest
            .variables
            .iter()
            .filter(|(name, decl)| decl.default.is_none() && providers.lookup(name).is_none())
            .map(|(name, _)| name.as_str())
            .collect();
        if !missing.is_empty() {
            missing.sort_unstable();
            let keys: Vec<String> = missing
                .iter()
                .map(|name| format!("Key({name:?})"))
                .collect();
            // Spin's words: a provider error whose cause is the same sentence.
            let cause = format!(
                "no provider resolved required variable(s): [{}]",
                keys.join(", ")
            );
            return Err(anyhow!(cause.clone()).context(format!("provider error: {cause}")));
        }

        let app: HashMap<String, String> = manifest
            .variables
            .iter()
            .map(|(name, decl)| {
                let value = providers
                    .lookup(name)
                    .or_else(|| decl.default.clone())
                    .unwrap_or_default();
                (name.clone(), value)
            })
            .collect();

        let mut components = HashMap::new();
        for (id, parsed) in templates {
            let mut values = BTreeMap::new();
            for (name, template) in parsed {
                values.insert(name, template.render(&app)?);
            }
            components.insert(id, values);
        }
        Ok(Self { app, components })
    }

    /// The application variables, for templates such as `allowed_outbound_hosts`.
    pub fn app_values(&self) -> &HashMap<String, String> {
        &self.app
    }

    /// The variables one component can read.
    pub fn component(&self, component_id: &str) -> ComponentVariables {
        ComponentVariables {
            component_id: component_id.to_string(),
            values: self
                .components
                .get(component_id)
                .cloned()
                .unwrap_or_default(),
        }
    }
}

/// What `fermyon:spin/variables.get` answers for one component.
#[derive(Clone)]
pub struct ComponentVariables {
    component_id: String,
    values: BTreeMap<String, String>,
}

impl std::fmt::Debug for ComponentVariables {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ComponentVariables")
            .field("component_id", &self.component_id)
            .field("names", &self.values.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl ComponentVariables {
    /// The value of `name`, or Spin's error for it.
    pub fn get(&self, name: &str) -> Result<String, GetError> {
        validate_key(name).map_err(|error| GetError::InvalidName(error.to_string()))?;
        self.values.get(name).cloned().ok_or_else(|| {
            GetError::Undefined(format!("no variable for {:?}.{name:?}", self.component_id))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn manifest() -> Manifest {
        Manifest::parse(
            r#"
spin_manifest_version = 2
[application]
name = "t"
[variables]
db_url = { required = true }
db_password = { required = true, secret = true }
host = { default = "127.0.0.1:5432" }
[[trigger.http]]
route = "/..."
component = "c"
[component.c]
source = "c.wasm"
[component.c.variables]
url = "postgres://{{ host }}/x"
password = "{{db_password}}"
"#,
            Path::new("/"),
        )
        .unwrap()
    }

    fn providers(values: &[(&str, &str)]) -> VariableProviders {
        VariableProviders {
            explicit: values
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn missing_required_variables_fail_with_spins_message() {
        let error = ResolvedVariables::resolve(&manifest(), &providers(&[])).unwrap_err();
        assert_eq!(
            error.to_string(),
            r#"provider error: no provider resolved required variable(s): [Key("db_password"), Key("db_url")]"#
        );
        assert_eq!(
            error.root_cause().to_string(),
            r#"no provider resolved required variable(s): [Key("db_password"), Key("db_url")]"#
        );
    }

    #[test]
    fn component_variables_are_templates_over_app_variables() {
        let resolved = ResolvedVariables::resolve(
            &manifest(),
            &providers(&[("db_url", "u"), ("db_password", "p"), ("host", "db:6543")]),
        )
        .unwrap();
        let component = resolved.component("c");
        assert_eq!(component.get("url").unwrap(), "postgres://db:6543/x");
        assert_eq!(component.get("password").unwrap(), "p");
        assert_eq!(
            component.get("db_url"),
            Err(GetError::Undefined(
                r#"no variable for "c"."db_url""#.into()
            ))
        );
        assert!(matches!(
            component.get("Bad-Name"),
            Err(GetError::InvalidName(_))
        ));
    }

    #[test]
    fn templates_parse_literals_and_expressions() {
        let template = Template::parse("a-{{ x }}-b{{y}}").unwrap();
        assert_eq!(template.variables().collect::<Vec<_>>(), ["x", "y"]);
        assert!(!template.is_literal());
        assert!(Template::parse("{{ open").is_err());
        assert!(Template::parse("plain").unwrap().is_literal());
    }

    #[test]
    fn keys_follow_spins_rules() {
        assert!(validate_key("db_url").is_ok());
        assert!(validate_key("a1").is_ok());
        for bad in ["", "Db", "1a", "a_", "a__b", "a-b"] {
            assert!(validate_key(bad).is_err(), "{bad}");
        }
    }
}
