//! How the provider reaches AWS, as pipelines behind a corporate network need: through the
//! forward proxy `http_proxy` or `HTTP_PROXY` names (the local AWS's name resolves nowhere
//! but at the proxy, so nothing reaches it another way), never for this machine, not for
//! `NO_PROXY`'s hosts; and over TLS re-signed by an authority the system does not trust,
//! refused until `custom_ca_bundle`, `AWS_CA_BUNDLE` or the profile's `ca_bundle` names it.

use acceptance_tests::tls_front::TlsFront;
use acceptance_tests::{Harness, ReleaseOpts};

/// A name that resolves nowhere (RFC 2606): only a proxy can take a call there.
const UNREACHABLE: &str = "http://aws.immutable.invalid:4566";

/// The release configuration against `endpoint`, with `lines` added to the provider block.
fn config(h: &Harness, endpoint: &str, lines: &str) -> String {
    h.release_hcl(&ReleaseOpts {
        endpoint: Some(endpoint.to_string()),
        ..ReleaseOpts::default()
    })
    .replace("  endpoint_url  =", &format!("{lines}\n  endpoint_url  ="))
}

/// The hosts the calls the proxy saw since `from` were addressed to, as a forward proxy's.
fn forwarded_for(h: &Harness, from: usize) -> Vec<Option<String>> {
    h.proxy.log()[from..]
        .iter()
        .map(|s| s.forwarded_for.clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_provider_reaches_aws_through_the_proxy_it_is_given_and_only_then() -> anyhow::Result<()>
{
    let h = Harness::start().await?;
    let only_there = |seen: &[Option<String>]| {
        !seen.is_empty()
            && seen
                .iter()
                .all(|a| a.as_deref() == Some("aws.immutable.invalid:4566"))
    };

    // 1. Without a proxy the local AWS's name resolves nowhere: the plan fails, naming it.
    h.write(&config(&h, UNREACHABLE, ""))?;
    let run = h.terraform_env(&["plan"], &[]).await?;
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(
        run.all()
            .contains("reaching aws.immutable.invalid:4566 directly")
            && run.says("behind a proxy, set http_proxy / https_proxy"),
        "the error says where it went, and what to do: {}",
        run.all()
    );
    assert!(h.proxy.log().is_empty(), "nothing reached the local AWS");

    // 2. `http_proxy` in the provider block: the release is made through it.
    h.write(&config(
        &h,
        UNREACHABLE,
        &format!("  http_proxy    = \"{}\"", h.proxy.url),
    ))?;
    h.apply(&[]).await?;
    assert_eq!(h.resource_values().await?["release"], 1);
    let seen = forwarded_for(&h, 0);
    assert!(only_there(&seen), "every call came as a proxy's: {seen:?}");

    // 3. `HTTP_PROXY` in the environment, as a pipeline sets it; upper case wins.
    h.write(&config(&h, UNREACHABLE, ""))?;
    let from = h.proxy.log().len();
    let run = h
        .terraform_env(
            &["plan", "-detailed-exitcode"],
            &[
                ("HTTP_PROXY", h.proxy.url.as_str()),
                ("http_proxy", "http://127.0.0.1:9"),
            ],
        )
        .await?;
    assert_eq!(
        run.code,
        0,
        "the plan is empty, read through the proxy: {}",
        run.all()
    );
    let seen = forwarded_for(&h, from);
    assert!(only_there(&seen), "{seen:?}");

    // 4. `NO_PROXY` (and the block's `no_proxy`) send the local AWS's name direct: the
    // plan fails on the name, and the proxy sees nothing.
    for (lines, env) in [
        (
            "",
            [
                ("HTTP_PROXY", h.proxy.url.as_str()),
                ("NO_PROXY", "10.0.0.0/8,.invalid"),
            ],
        ),
        (
            "  no_proxy      = \"aws.immutable.invalid\"",
            [("HTTP_PROXY", h.proxy.url.as_str()), ("NO_PROXY", "")],
        ),
    ] {
        h.write(&config(&h, UNREACHABLE, lines))?;
        let from = h.proxy.log().len();
        let run = h.terraform_env(&["plan"], &env).await?;
        assert_eq!(run.code, 1, "{lines}: {}", run.all());
        assert!(
            run.all()
                .contains("reaching aws.immutable.invalid:4566 directly"),
            "the error says the call went direct: {}",
            run.all()
        );
        assert_eq!(h.proxy.log().len(), from, "{lines}: the proxy saw nothing");
    }

    // 5. A call to this machine never goes through a proxy, whatever the environment says
    // (as hashicorp/aws): the plan against the loopback address works with a proxy that
    // does not exist.
    h.write(&config(&h, h.proxy.url.as_str(), ""))?;
    let from = h.proxy.log().len();
    let run = h
        .terraform_env(
            &["plan", "-detailed-exitcode"],
            &[
                ("HTTP_PROXY", "http://127.0.0.1:9"),
                ("HTTPS_PROXY", "http://127.0.0.1:9"),
            ],
        )
        .await?;
    assert_eq!(run.code, 0, "{}", run.all());
    let seen = forwarded_for(&h, from);
    assert!(
        !seen.is_empty() && seen.iter().all(Option::is_none),
        "direct calls: {seen:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_private_authority_is_trusted_only_when_a_ca_bundle_names_it() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    let front = TlsFront::start(h.proxy.url.as_str()).await?;
    let ca = h.dir.0.join("corp-ca.pem");
    front.write_ca(&ca)?;
    let ca = ca.display().to_string();

    // 1. The system does not trust the front's authority: refused, and said.
    h.write(&config(&h, &front.url, ""))?;
    let run = h.terraform_env(&["plan"], &[]).await?;
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(
        run.all().contains("UnknownIssuer")
            && run.says("name its authority's certificate in custom_ca_bundle (or AWS_CA_BUNDLE)"),
        "the error says the certificate is not trusted, and what to do: {}",
        run.all()
    );
    assert!(h.proxy.log().is_empty(), "nothing got through the front");

    // 2. `custom_ca_bundle`: the release is made over TLS.
    h.write(&config(
        &h,
        &front.url,
        &format!("  custom_ca_bundle = \"{ca}\""),
    ))?;
    h.apply(&[]).await?;
    assert_eq!(h.resource_values().await?["release"], 1);
    assert!(
        !h.proxy.log().is_empty(),
        "the calls came through the front"
    );

    // 3. `AWS_CA_BUNDLE`, and a profile's `ca_bundle`, do the same.
    h.write(&config(&h, &front.url, ""))?;
    let run = h
        .terraform_env(
            &["plan", "-detailed-exitcode"],
            &[("AWS_CA_BUNDLE", ca.as_str())],
        )
        .await?;
    assert_eq!(run.code, 0, "AWS_CA_BUNDLE: {}", run.all());
    let profile = h.dir.0.join("aws-config");
    std::fs::write(
        &profile,
        format!("[profile corp]\nregion = us-east-1\nca_bundle = {ca}\n"),
    )?;
    let run = h
        .terraform_env(
            &["plan", "-detailed-exitcode"],
            &[
                ("AWS_CONFIG_FILE", profile.display().to_string().as_str()),
                ("AWS_PROFILE", "corp"),
            ],
        )
        .await?;
    assert_eq!(run.code, 0, "the profile's ca_bundle: {}", run.all());

    // 4. The bundle replaces the system's authorities, and a bundle that is not one is
    // refused before anything is called.
    let not_pem = h.dir.0.join("not.pem");
    std::fs::write(&not_pem, "a note, not a certificate\n")?;
    let from = h.proxy.log().len();
    let run = h
        .terraform_env(
            &["plan"],
            &[("AWS_CA_BUNDLE", &not_pem.display().to_string())],
        )
        .await?;
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(run.says("holds no certificate"), "{}", run.all());
    assert_eq!(h.proxy.log().len(), from, "nothing was called");
    Ok(())
}
