//! The data source reads a release by name from AWS.

use acceptance_tests::{Harness, ReleaseOpts};

#[tokio::test(flavor = "multi_thread")]
async fn data_source_reads_a_release_by_name() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    let base = h.release_hcl(&ReleaseOpts::default());
    h.write(&base)?;
    h.apply(&[]).await?;
    h.apply(&[("image_id", &h.fx.image_b)]).await?;

    h.write(&format!(
        "{base}\ndata \"immutable_release\" \"read\" {{\n  name = immutable_release.web.name\n}}\n\
         output \"ds_image\" {{ value = data.immutable_release.read.image_id }}\n\
         output \"ds_release\" {{ value = data.immutable_release.read.release }}\n\
         output \"ds_previous\" {{ value = data.immutable_release.read.previous_image_id }}\n\
         output \"ds_traffic\" {{ value = data.immutable_release.read.traffic }}\n\
         output \"ds_history\" {{ value = length(data.immutable_release.read.history) }}\n"
    ))?;
    h.apply(&[("image_id", &h.fx.image_b)]).await?;
    let out = h.outputs().await?;
    assert_eq!(out["ds_image"]["value"], h.fx.image_b.as_str());
    assert_eq!(out["ds_release"]["value"], 2);
    assert_eq!(out["ds_previous"]["value"], h.fx.image_a.as_str());
    assert_eq!(
        out["ds_traffic"]["value"],
        serde_json::json!({"web-r1": 0, "web-r2": 100})
    );
    assert_eq!(out["ds_history"]["value"], 2);

    h.write(&format!(
        "{base}\ndata \"immutable_release\" \"nope\" {{\n  name = \"nope\"\n}}\n"
    ))?;
    let run = h
        .terraform(&["plan", &format!("-var=image_id={}", h.fx.image_b)])
        .await?;
    assert_eq!(run.code, 1);
    assert!(
        run.all()
            .contains("no release named \"nope\" exists in this region"),
        "{}",
        run.all()
    );
    Ok(())
}
