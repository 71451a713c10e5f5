//! A private certificate authority for the demo, tests and small sites.
//!
//! Production deployments bring their own certificates; the platform CA's certificate is what
//! devices pin ([`crate::tls::client_config`]).

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

use crate::NetError;

/// Paths of the generated material.
#[derive(Debug, Clone)]
pub struct PkiFiles {
    /// The CA certificate (what clients pin).
    pub ca_cert: PathBuf,
    /// Server certificate chain for the platform's listeners.
    pub server_cert: PathBuf,
    /// Its private key.
    pub server_key: PathBuf,
}

/// Generated PEM material.
pub struct Pki {
    /// CA certificate, PEM.
    pub ca_cert_pem: String,
    /// Server certificate, PEM.
    pub server_cert_pem: String,
    /// Server key, PEM (PKCS#8).
    pub server_key_pem: String,
}

fn tls_err(e: rcgen::Error) -> NetError {
    NetError::Tls(e.to_string())
}

impl Pki {
    /// A new CA and one server certificate for `names` (DNS names or IP addresses).
    pub fn generate(names: &[&str]) -> Result<Self, NetError> {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(tls_err)?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "peercam platform CA");
        ca_params.distinguished_name = dn;
        let ca_key = KeyPair::generate().map_err(tls_err)?;
        let ca_cert = ca_params.self_signed(&ca_key).map_err(tls_err)?;
        let issuer = Issuer::new(ca_params, ca_key);

        let names: Vec<String> = names.iter().map(|s| (*s).to_owned()).collect();
        let mut params = CertificateParams::new(names).map_err(tls_err)?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "peercam platform");
        params.distinguished_name = dn;
        let key = KeyPair::generate().map_err(tls_err)?;
        let cert = params.signed_by(&key, &issuer).map_err(tls_err)?;
        Ok(Self {
            ca_cert_pem: ca_cert.pem(),
            server_cert_pem: cert.pem(),
            server_key_pem: key.serialize_pem(),
        })
    }

    /// Writes `ca.pem`, `server.pem` and `server.key` (mode 0600) into `dir`.
    pub fn write(&self, dir: &Path) -> Result<PkiFiles, NetError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| NetError::io(format!("creating {}", dir.display()), e))?;
        let files = PkiFiles {
            ca_cert: dir.join("ca.pem"),
            server_cert: dir.join("server.pem"),
            server_key: dir.join("server.key"),
        };
        write_file(&files.ca_cert, &self.ca_cert_pem, false)?;
        write_file(&files.server_cert, &self.server_cert_pem, false)?;
        write_file(&files.server_key, &self.server_key_pem, true)?;
        Ok(files)
    }
}

/// Writes a file; secret ones are created with mode 0600.
pub fn write_file(path: &Path, contents: &str, secret: bool) -> Result<(), NetError> {
    use std::io::Write as _;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    let _ = secret;
    let mut f = opts
        .open(path)
        .map_err(|e| NetError::io(format!("writing {}", path.display()), e))?;
    f.write_all(contents.as_bytes())
        .map_err(|e| NetError::io(format!("writing {}", path.display()), e))
}
