//! Reading a Spin manifest (`spin_manifest_version = 2`): the application's variables,
//! its HTTP triggers and its components.
//!
//! Only what the host serves is read; build sections and unknown keys are ignored, as
//! `spin up` ignores what it does not need. Component sources are resolved relative to
//! the manifest's directory, as Spin does.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::Deserialize;

/// A parsed manifest with component sources made absolute.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// `[application] name`.
    pub name: String,
    /// `[application] version`, if any.
    pub version: Option<String>,
    /// `[variables]`, by name.
    pub variables: BTreeMap<String, VariableDecl>,
    /// `[[trigger.http]]` in manifest order.
    pub http_triggers: Vec<HttpTrigger>,
    /// `[component.<id>]`, by id.
    pub components: BTreeMap<String, ComponentDecl>,
    /// The directory the manifest lives in.
    pub dir: PathBuf,
}

/// One application variable.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VariableDecl {
    /// The value used when no provider has one.
    #[serde(default)]
    pub default: Option<String>,
    /// A required variable must come from a provider.
    #[serde(default)]
    pub required: bool,
    /// Secret variables are never printed.
    #[serde(default)]
    pub secret: bool,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
}

/// One `[[trigger.http]]`.
#[derive(Debug, Clone)]
pub struct HttpTrigger {
    /// The route as written (`/a/b`, `/a/...`); `None` for a private endpoint.
    pub route: Option<String>,
    /// The component it serves.
    pub component: String,
}

/// One `[component.<id>]`.
#[derive(Debug, Clone)]
pub struct ComponentDecl {
    /// Absolute path of the `.wasm`.
    pub source: PathBuf,
    /// `allowed_outbound_hosts`, unresolved templates.
    pub allowed_outbound_hosts: Vec<String>,
    /// `[component.<id>.variables]`: name → template over application variables.
    pub variables: BTreeMap<String, String>,
    /// `environment`: WASI environment variables.
    pub environment: BTreeMap<String, String>,
    /// `description`, if any.
    pub description: Option<String>,
}

#[derive(Deserialize)]
struct RawManifest {
    spin_manifest_version: toml::Value,
    application: RawApplication,
    #[serde(default)]
    variables: BTreeMap<String, VariableDecl>,
    #[serde(default)]
    trigger: RawTriggers,
    #[serde(default)]
    component: BTreeMap<String, RawComponent>,
}

#[derive(Deserialize)]
struct RawApplication {
    name: String,
    #[serde(default)]
    version: Option<String>,
}

#[derive(Deserialize, Default)]
struct RawTriggers {
    #[serde(default)]
    http: Vec<RawHttpTrigger>,
}

#[derive(Deserialize)]
struct RawHttpTrigger {
    route: RawRoute,
    component: String,
    #[serde(default)]
    executor: Option<toml::Value>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawRoute {
    Route(String),
    Private { private: bool },
}

#[derive(Deserialize)]
struct RawComponent {
    source: RawSource,
    #[serde(default)]
    allowed_outbound_hosts: Vec<String>,
    #[serde(default)]
    variables: BTreeMap<String, String>,
    #[serde(default)]
    environment: BTreeMap<String, String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    files: Option<toml::Value>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawSource {
    Path(String),
    Remote { url: String },
}

impl Manifest {
    /// Reads and checks the manifest at `path`.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read manifest {}", path.display()))?;
        let dir = path
            .canonicalize()
            .with_context(|| format!("cannot resolve {}", path.display()))?
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        Self::parse(&text, &dir).with_context(|| format!("invalid manifest {}", path.display()))
    }

    /// Parses manifest text whose relative paths are relative to `dir`.
    pub fn parse(text: &str, dir: &Path) -> anyhow::Result<Self> {
        let raw: RawManifest = toml::from_str(text)?;
        if raw.spin_manifest_version.as_integer() != Some(2)
            && raw.spin_manifest_version.as_str() != Some("2")
        {
            bail!("only spin_manifest_version = 2 is supported");
        }
        for (name, decl) in &raw.variables {
            crate::variables::validate_key(name)?;
            if decl.required && decl.default.is_some() {
                bail!("variable {name:?} cannot be both required and have a default");
            }
            if !decl.required && decl.default.is_none() {
                bail!("variable {name:?} must either be required or have a default");
            }
        }
        let mut components = BTreeMap::new();
        for (id, raw_component) in raw.component {
            let source = match raw_component.source {
                RawSource::Path(path) => dir.join(path),
                RawSource::Remote { url } => {
                    bail!("component {id:?}: remote sources ({url}) are not supported by this host")
                }
            };
            if raw_component.files.is_some() {
                bail!("component {id:?}: `files` mounts are not supported by this host");
            }
            components.insert(
                id,
                ComponentDecl {
                    source,
                    allowed_outbound_hosts: raw_component.allowed_outbound_hosts,
                    variables: raw_component.variables,
                    environment: raw_component.environment,
                    description: raw_component.description,
                },
            );
        }
        let mut http_triggers = Vec::new();
        for trigger in raw.trigger.http {
            if trigger.executor.as_ref().is_some_and(|executor| {
                executor.get("type").and_then(toml::Value::as_str) != Some("http")
            }) {
                bail!(
                    "component {:?}: only the default (wasi:http) executor is supported",
                    trigger.component
                );
            }
            if !components.contains_key(&trigger.component) {
                bail!(
                    "trigger refers to an unknown component {:?}",
                    trigger.component
                );
            }
            let route = match trigger.route {
                RawRoute::Route(route) => Some(route),
                RawRoute::Private { private: true } => None,
                RawRoute::Private { private: false } => bail!(
                    "route must be a string pattern or '{{ private = true }}': '{}' has {{ private = false }}",
                    trigger.component
                ),
            };
            http_triggers.push(HttpTrigger {
                route,
                component: trigger.component,
            });
        }
        Ok(Self {
            name: raw.application.name,
            version: raw.application.version,
            variables: raw.variables,
            http_triggers,
            components,
            dir: dir.to_path_buf(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFEST: &str = r#"
spin_manifest_version = 2
[application]
name = "demo"
[variables]
db_url = { required = true, secret = true }
greeting = { default = "hi" }
[[trigger.http]]
route = "/a/..."
component = "a"
[[trigger.http]]
route = { private = true }
component = "a"
[component.a]
source = "target/a.wasm"
allowed_outbound_hosts = ["postgres://{{ db_host }}"]
[component.a.variables]
url = "{{ db_url }}"
[component.a.build]
command = "cargo build"
"#;

    #[test]
    fn sources_are_relative_to_the_manifest_directory() {
        let manifest = Manifest::parse(MANIFEST, Path::new("/srv/app")).unwrap();
        assert_eq!(
            manifest.components["a"].source,
            PathBuf::from("/srv/app/target/a.wasm")
        );
        assert_eq!(manifest.http_triggers.len(), 2);
        assert_eq!(manifest.http_triggers[0].route.as_deref(), Some("/a/..."));
        assert_eq!(manifest.http_triggers[1].route, None);
        assert!(manifest.variables["db_url"].required);
        assert_eq!(manifest.components["a"].variables["url"], "{{ db_url }}");
    }

    #[test]
    fn a_trigger_for_an_unknown_component_is_refused() {
        let text = MANIFEST.replace(
            "component = \"a\"\n[[trigger",
            "component = \"b\"\n[[trigger",
        );
        let error = Manifest::parse(&text, Path::new("/")).unwrap_err();
        assert!(
            error.to_string().contains("unknown component \"b\""),
            "{error}"
        );
    }

    #[test]
    fn a_variable_without_default_must_be_required() {
        let text = MANIFEST.replace("greeting = { default = \"hi\" }", "greeting = {}");
        assert!(Manifest::parse(&text, Path::new("/")).is_err());
    }
}
