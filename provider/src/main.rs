//! The plugin binary Terraform starts. Everything lives in the library.

fn main() -> anyhow::Result<()> {
    immutable_provider::init_process();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(tf_provider::serve(
        "immutable",
        immutable_provider::terraform::ImmutableProvider::new(),
    ))
}
