//! The plugin binary Terraform starts. Everything lives in the library.

fn main() -> anyhow::Result<()> {
    immutable_provider::init_process();
    immutable_provider::stop::install_stop_provider_hook();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    immutable_provider::stop::spawn_signal_handlers(&runtime);
    runtime.block_on(tf_provider::serve(
        "immutable",
        immutable_provider::terraform::ImmutableProvider::new(),
    ))
}
