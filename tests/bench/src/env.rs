//! What a scenario runs against: a private PostgreSQL cluster (default durability),
//! one migrated database, the app of `spin.toml` served in-process by the host, and the
//! OpenAI stand-in when asked for.

use std::net::SocketAddr;

use anyhow::{Context, Result};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use voice_edge_openai_standin::StandIn;
use voice_edge_testkit::app::TestApp;
use voice_edge_testkit::pg::{PgCluster, TestDb};

/// The OpenAI key the app is given when the stand-in serves it.
pub const STANDIN_API_KEY: &str = "sk-bench-standin-0123456789";

/// The running pieces. Fields drop in order: the app before the database's cluster.
pub struct Env {
    pub app: TestApp,
    pub openai: Option<StandIn>,
    pub db: TestDb,
    /// `whsec_…`, as the app's `classconnect_webhook_secret`.
    pub webhook_secret: String,
    /// The app's `supabase_jwt_secret` (HS256), for scenarios that mint JWTs.
    pub jwt_secret: String,
    cluster: PgCluster,
}

impl Env {
    /// Starts a cluster, a database and the app (and the OpenAI stand-in).
    pub fn start(needs_openai: bool) -> Result<Env> {
        let cluster = PgCluster::start_private();
        let db = TestDb::create_in(&cluster);
        let webhook_secret = format!("whsec_{}", STANDARD.encode(random_bytes()));
        let jwt_secret = STANDARD.encode(random_bytes());
        let openai = needs_openai.then(StandIn::start);

        let mut vars = db.app_vars();
        vars.push(("supabase_jwt_secret".into(), jwt_secret.clone()));
        vars.push(("classconnect_webhook_secret".into(), webhook_secret.clone()));
        if let Some(openai) = &openai {
            vars.push(("openai_api_key".into(), STANDIN_API_KEY.into()));
            vars.push(("openai_base_url".into(), openai.base_url()));
        }
        let pairs: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let app = TestApp::start(&pairs);
        Ok(Env {
            app,
            openai,
            db,
            webhook_secret,
            jwt_secret,
            cluster,
        })
    }

    /// The app's address on loopback.
    pub fn addr(&self) -> Result<SocketAddr> {
        let base = self.app.base_url();
        base.trim_start_matches("http://")
            .parse()
            .with_context(|| format!("the app's address {base}"))
    }

    /// A superuser connection to the scenario's database.
    pub fn client(&self) -> postgres::Client {
        self.db.client()
    }

    /// The PostgreSQL cluster (port, data directory).
    pub fn cluster(&self) -> &PgCluster {
        &self.cluster
    }
}

/// 32 random bytes for a secret that lives as long as the run.
fn random_bytes() -> Vec<u8> {
    let mut bytes = uuid::Uuid::new_v4().as_bytes().to_vec();
    bytes.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    bytes
}
