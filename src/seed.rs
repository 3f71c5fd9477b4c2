//! `serve --demo`: a demo JSON:API backend, a demo tenant when none is
//! configured, demo clients and users, and curl commands to try them.
//! (Being written.)

pub async fn serve_demo(_config: splitgate_shared::Config) -> anyhow::Result<()> {
    anyhow::bail!("--demo is not ready yet")
}
