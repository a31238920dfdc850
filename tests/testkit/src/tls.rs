//! Certificates for TLS tests, made with the `openssl` command: a root CA of the
//! test's own ([`TestCa`]) and a server certificate it signs for `127.0.0.1`, so that
//! a PostgreSQL can speak TLS only ([`crate::pg::PgCluster::start_private_tls`]) and a
//! test can say which CA the app is given. Every CA has its own name and key, so a
//! certificate signed by one never verifies against another.
//!
//! Keys are ECDSA P-256 (quick to make; both rustls and OpenSSL verify them), and the
//! certificates carry what a verifier asks of them: the CA is `CA:TRUE` with
//! `keyCertSign`; the server's certificate is `CA:FALSE`, `serverAuth`, with the
//! address in its `subjectAltName`. They are valid from a day ago for two days.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

use crate::pg::repo_root;

/// A root CA made for a test, in a directory of its own that goes when it is dropped.
#[derive(Debug)]
pub struct TestCa {
    dir: PathBuf,
}

/// A server certificate and its key, as files.
#[derive(Debug, Clone)]
pub struct ServerCertificate {
    /// The certificate (PEM).
    pub certificate: PathBuf,
    /// Its private key (PEM, unencrypted).
    pub key: PathBuf,
}

fn openssl(args: &[&str], dir: &Path) -> Result<()> {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .context("running openssl (is it installed? apt-get install openssl)")?;
    if !output.status.success() {
        bail!(
            "openssl {} failed: {}\n{}",
            args.first().copied().unwrap_or_default(),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

const EC_KEY: [&str; 4] = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];

impl TestCa {
    /// A new CA whose subject names `label` (and this process and a counter, so that no
    /// two CAs share a name).
    pub fn new(label: &str) -> TestCa {
        match Self::try_new(label) {
            Ok(ca) => ca,
            Err(error) => panic!("making a test CA failed: {error:#}"),
        }
    }

    fn try_new(label: &str) -> Result<TestCa> {
        let parent = repo_root().join("target/test-tls");
        fs::create_dir_all(&parent).with_context(|| format!("creating {}", parent.display()))?;
        // Those of test processes that are gone (a CA in a static is never dropped).
        crate::pg::remove_leftovers(&parent);
        let ca = TestCa {
            dir: parent.join(crate::pg::unique_suffix()),
        };
        fs::create_dir(&ca.dir)?;
        let subject = format!("/O=voice-edge tests/CN={label} {}", ca.name_suffix());
        let mut args = vec!["req", "-x509", "-nodes"];
        args.extend(EC_KEY);
        args.extend([
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "2",
            "-subj",
            &subject,
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
        openssl(&args, &ca.dir)?;
        Ok(ca)
    }

    fn name_suffix(&self) -> String {
        self.dir
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    /// The CA's certificate, PEM: what `db_ca_cert` holds.
    pub fn pem(&self) -> String {
        fs::read_to_string(self.certificate_path()).expect("the CA certificate is readable")
    }

    /// The CA's certificate file.
    pub fn certificate_path(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }

    /// A certificate for a server at `ip` (and `localhost`), signed by this CA, written
    /// as `server.crt` and `server.key` in `dir`.
    pub fn issue_server_certificate(&self, dir: &Path, ip: &str) -> Result<ServerCertificate> {
        let certificate = dir.join("server.crt");
        let key = dir.join("server.key");
        let request = dir.join("server.csr");
        let extensions = dir.join("server.ext");
        fs::write(
            &extensions,
            format!(
                "basicConstraints=critical,CA:FALSE\n\
                 keyUsage=critical,digitalSignature\n\
                 extendedKeyUsage=serverAuth\n\
                 subjectAltName=IP:{ip},DNS:localhost\n"
            ),
        )?;
        let subject = format!("/O=voice-edge tests/CN={ip}");
        let (key_arg, request_arg) = (key.display().to_string(), request.display().to_string());
        let mut args = vec!["req", "-new", "-nodes"];
        args.extend(EC_KEY);
        args.extend(["-keyout", &key_arg, "-out", &request_arg, "-subj", &subject]);
        openssl(&args, &self.dir)?;
        let (certificate_arg, extensions_arg) = (
            certificate.display().to_string(),
            extensions.display().to_string(),
        );
        openssl(
            &[
                "x509",
                "-req",
                "-in",
                &request_arg,
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-set_serial",
                "2",
                "-days",
                "2",
                "-out",
                &certificate_arg,
                "-extfile",
                &extensions_arg,
            ],
            &self.dir,
        )?;
        let _ = fs::remove_file(&request);
        let _ = fs::remove_file(&extensions);
        Ok(ServerCertificate { certificate, key })
    }
}

impl TestCa {
    /// Removes the CA's files (what dropping it does, for a CA that lives in a static).
    pub(crate) fn remove_files(&self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

impl Drop for TestCa {
    fn drop(&mut self) {
        self.remove_files();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_certificate_verifies_against_its_ca_and_not_another() {
        let ca = TestCa::new("testkit ca");
        let other = TestCa::new("testkit other ca");
        assert!(ca.pem().starts_with("-----BEGIN CERTIFICATE-----"));
        assert_ne!(ca.pem(), other.pem());
        let server = ca
            .issue_server_certificate(&ca.dir, "127.0.0.1")
            .expect("a server certificate");
        let verify = |ca: &TestCa| {
            Command::new("openssl")
                .args([
                    "verify",
                    "-purpose",
                    "sslserver",
                    "-verify_ip",
                    "127.0.0.1",
                    "-CAfile",
                ])
                .arg(ca.certificate_path())
                .arg(&server.certificate)
                .output()
                .expect("openssl verify runs")
                .status
                .success()
        };
        assert!(verify(&ca), "the server certificate chains to its CA");
        assert!(!verify(&other), "and not to another CA");
        let dir = ca.dir.clone();
        drop(ca);
        assert!(!dir.exists(), "dropping a CA removes its files");
    }
}
