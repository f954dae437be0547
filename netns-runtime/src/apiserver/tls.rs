//! The run's credentials: a CA, a serving certificate it signs, and a bearer token.

use std::net::Ipv4Addr;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// What clients need to trust and reach the server, and what the server serves with.
pub struct Credentials {
    /// The CA certificate, PEM (a kubeconfig's `certificate-authority-data`, a pod's `ca.crt`).
    pub ca_pem: String,
    /// The bearer token every request must carry.
    pub token: String,
    cert: CertificateDer<'static>,
    key: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("generating the API's certificates: {0}")]
    Cert(#[from] rcgen::Error),
    #[error("configuring TLS: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("reading random bytes for the token: {0}")]
    Random(std::io::Error),
}

/// The serving certificate's names: the API address, the in-cluster names, the ClusterIP.
pub fn subject_alt_names(api: Ipv4Addr, cluster_ip: Ipv4Addr) -> Vec<SanType> {
    let mut sans = vec![
        SanType::IpAddress(api.into()),
        SanType::IpAddress(cluster_ip.into()),
    ];
    for name in [
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
        "localhost",
    ] {
        if let Ok(n) = name.try_into() {
            sans.push(SanType::DnsName(n));
        }
    }
    sans
}

impl Credentials {
    /// A new CA, a serving certificate for `api` and `cluster_ip`, and a random token.
    pub fn generate(api: Ipv4Addr, cluster_ip: Ipv4Addr) -> Result<Credentials, TlsError> {
        let ca_key = KeyPair::generate()?;
        let mut ca = CertificateParams::new(Vec::<String>::new())?;
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "podpath-ca");
        ca.distinguished_name = dn;
        let ca_cert = ca.self_signed(&ca_key)?;
        let issuer = Issuer::new(ca, ca_key);

        let key = KeyPair::generate()?;
        let mut leaf = CertificateParams::new(Vec::<String>::new())?;
        leaf.subject_alt_names = subject_alt_names(api, cluster_ip);
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "kube-apiserver");
        leaf.distinguished_name = dn;
        leaf.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        leaf.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let cert = leaf.signed_by(&key, &issuer)?;

        let mut random = [0u8; 24];
        std::fs::File::open("/dev/urandom")
            .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut random))
            .map_err(TlsError::Random)?;
        Ok(Credentials {
            ca_pem: ca_cert.pem(),
            token: data_encoding::HEXLOWER.encode(&random),
            cert: cert.der().clone(),
            key: key.serialize_der(),
        })
    }

    /// The server's TLS configuration: HTTP/1.1 only by ALPN, so clients never try HTTP/2.
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(
                vec![self.cert.clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key.clone())),
            )?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}
