//! `faultline certs init DIR`: a CA, an agent certificate and a client certificate (rcgen), for
//! a quick start with TLS: `ca.crt`, `ca.key`, `agent.crt`, `agent.key`, `client.crt`,
//! `client.key`. Keys are written owner-only; existing files are never overwritten.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};

use crate::exit::Failure;

/// The names every agent certificate carries besides `--san`.
const AGENT_NAMES: [&str; 4] = [
    "localhost",
    "127.0.0.1",
    "::1",
    faultline_agent::tls::AGENT_NAME,
];

fn failed(what: &str) -> impl Fn(rcgen::Error) -> Failure + '_ {
    move |e| Failure::failed(anyhow::anyhow!("{what}: {e}"))
}

/// Makes the set in `dir`. `days` is how long the agent's and client's certificates are
/// valid (the CA's ten times as long); `expired` makes them expired already (for tests of
/// the refusal).
pub fn init(dir: &Path, sans: &[String], days: u32, expired: bool) -> Result<String, Failure> {
    let files = [
        "ca.crt",
        "ca.key",
        "agent.crt",
        "agent.key",
        "client.crt",
        "client.key",
    ];
    if let Some(there) = files.iter().find(|f| dir.join(f).exists()) {
        return Err(Failure::usage(format!(
            "{}: already there; certs init never overwrites (remove the old set first)",
            dir.join(there).display()
        )));
    }
    std::fs::create_dir_all(dir)
        .map_err(|e| Failure::failed(anyhow::anyhow!("{}: {e}", dir.display())))?;
    let now = time_now();
    let validity = |params: &mut CertificateParams, days: u32| {
        if expired {
            params.not_before = now - time::Duration::days(30);
            params.not_after = now - time::Duration::days(1);
        } else {
            params.not_before = now - time::Duration::minutes(5);
            params.not_after = now + time::Duration::days(i64::from(days));
        }
    };

    let ca_key = KeyPair::generate().map_err(failed("the CA's key"))?;
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(failed("the CA"))?;
    ca.distinguished_name = name("faultline CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca.not_before = now - time::Duration::minutes(5);
    ca.not_after = now + time::Duration::days(i64::from(days.saturating_mul(10)));
    let ca_cert = ca.self_signed(&ca_key).map_err(failed("the CA"))?;
    let issuer = Issuer::new(ca, &ca_key);

    let mut agent_names: Vec<String> = AGENT_NAMES.iter().map(|s| (*s).to_owned()).collect();
    agent_names.extend(sans.iter().cloned());
    let agent_key = KeyPair::generate().map_err(failed("the agent's key"))?;
    let mut agent =
        CertificateParams::new(agent_names.clone()).map_err(failed("the agent's names"))?;
    agent.distinguished_name = name(faultline_agent::tls::AGENT_NAME);
    agent.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    agent.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    validity(&mut agent, days);
    let agent_cert = agent
        .signed_by(&agent_key, &issuer)
        .map_err(failed("the agent's certificate"))?;

    let client_key = KeyPair::generate().map_err(failed("the client's key"))?;
    let mut client = CertificateParams::new(vec!["faultline-client".to_owned()])
        .map_err(failed("the client's names"))?;
    client.distinguished_name = name("faultline-client");
    client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    client.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    validity(&mut client, days);
    let client_cert = client
        .signed_by(&client_key, &issuer)
        .map_err(failed("the client's certificate"))?;

    write(dir, "ca.crt", &ca_cert.pem(), 0o644)?;
    write(dir, "ca.key", &ca_key.serialize_pem(), 0o600)?;
    write(dir, "agent.crt", &agent_cert.pem(), 0o644)?;
    write(dir, "agent.key", &agent_key.serialize_pem(), 0o600)?;
    write(dir, "client.crt", &client_cert.pem(), 0o644)?;
    write(dir, "client.key", &client_key.serialize_pem(), 0o600)?;
    Ok(format!(
        "wrote {d}/ca.crt, ca.key, agent.crt, agent.key, client.crt, client.key\n\
         the agent's names: {}\n\
         agent:  faultline agent --listen tcp:0.0.0.0:7070 --tls-cert {d}/agent.crt --tls-key {d}/agent.key --client-ca {d}/ca.crt\n\
         client: faultline faults list --agent tcp:IP:7070 --ca {d}/ca.crt --cert {d}/client.crt --key {d}/client.key\n",
        agent_names.join(", "),
        d = dir.display()
    ))
}

fn name(common: &str) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, common);
    name
}

fn time_now() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
}

fn write(dir: &Path, name: &str, text: &str, mode: u32) -> Result<(), Failure> {
    let path = dir.join(name);
    let io = |e: std::io::Error| Failure::failed(anyhow::anyhow!("{}: {e}", path.display()));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&path)
        .map_err(io)?;
    file.write_all(text.as_bytes()).map_err(io)
}
