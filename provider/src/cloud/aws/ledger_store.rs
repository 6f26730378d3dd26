//! The ledger and the lease, each kept in a launch template of its own that never launches
//! anything (`<name>-ledger`: the record in its versions' user data; `<name>-lease`: who
//! holds the release, in its tags).

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_ec2 as ec2;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use base64::Engine;

use super::errors::err;
use super::*;

/// What this process knows of a ledger's versions.
#[derive(Debug, Clone, Default)]
pub(super) struct LedgerSeen {
    version: i64,
    conflict: Option<String>,
}

/// A ledger template keeps the versions of the last this many saves (and version 1, its
/// default, which AWS never deletes); older ones are pruned every 10 saves, far below AWS's
/// 10,000 versions per template.
pub(super) const LEDGER_VERSIONS_KEPT: i64 = 10;

/// The launch template that holds a release's lease: `<name>-lease`.
pub(super) fn lease_template_name(release_name: &str) -> String {
    format!("{release_name}-lease")
}

/// The ledger's launch template name: `<name>-ledger`. Fleets are `<name>-r<N>`, so the two
/// never collide, whatever the names.
pub fn ledger_template_name(release_name: &str) -> String {
    format!("{release_name}-ledger")
}

/// Looks again at a ledger this process wrote that a read did not find (AWS's reads lag
/// its writes): this many times, [`LAGGING_READ_WAIT`] apart.
pub(super) const LAGGING_READ_RETRIES: u32 = 5;

/// See [`LAGGING_READ_RETRIES`].
pub(super) const LAGGING_READ_WAIT: std::time::Duration = std::time::Duration::from_millis(400);

impl AwsCloud {
    /// A ledger write that found another between this process's read (version `read`) and
    /// its write (`written`) is taken back, the other stays the latest, and nothing more is
    /// written until the ledger is read again: the error says so.
    pub(super) async fn take_back(&self, name: &str, read: i64, written: i64) -> CloudError {
        let name = name.to_string();
        let other = self.ledger_writer(&name, written - 1).await;
        let why = format!(
            "the release ledger ({name}) was written by another apply between this apply's read (version {read}) and its write (version {written}){other}; this apply's write was taken back and it changes nothing more: run it again"
        );
        let _ = self
            .ec2
            .delete_launch_template_versions()
            .launch_template_name(&name)
            .versions(written.to_string())
            .send()
            .await;
        self.ledger_versions.lock().unwrap().insert(
            name.clone(),
            LedgerSeen {
                version: read,
                conflict: Some(why.clone()),
            },
        );
        CloudError::Api {
            action: format!("writing release ledger ({name})"),
            code: "LedgerConflict".into(),
            message: why,
        }
    }

    /// Prunes the ledger template's old versions every `LEDGER_VERSIONS_KEPT` writes (AWS
    /// holds at most 10,000); best effort: a prune that fails is done by a later one.
    pub(super) async fn prune_ledger(&self, name: &str, written: i64) {
        if written > 2 * LEDGER_VERSIONS_KEPT && written % LEDGER_VERSIONS_KEPT == 0 {
            let from = (written - LEDGER_VERSIONS_KEPT - 199).max(2);
            let versions: Vec<String> = (from..=written - LEDGER_VERSIONS_KEPT)
                .map(|v| v.to_string())
                .collect();
            let _ = self
                .ec2
                .delete_launch_template_versions()
                .launch_template_name(name)
                .set_versions(Some(versions))
                .send()
                .await;
        }
    }

    /// One version of a ledger template (`$Latest` or a number), None when the template
    /// does not exist.
    pub(super) async fn ledger_template_version(
        &self,
        name: &str,
        version: &str,
    ) -> CloudResult<Option<ec2::types::LaunchTemplateVersion>> {
        match self
            .ec2
            .describe_launch_template_versions()
            .launch_template_name(name)
            .versions(version)
            .send()
            .await
        {
            Ok(o) => Ok(o.launch_template_versions().first().cloned()),
            Err(e)
                if e.code()
                    .is_some_and(|c| c.starts_with("InvalidLaunchTemplateName")) =>
            {
                Ok(None)
            }
            Err(e) => Err(err(format!("reading release ledger ({name})"))(e)),
        }
    }

    /// A ledger version's number and user data, None when the template does not exist.
    pub(super) async fn ledger_version(
        &self,
        name: &str,
        version: &str,
    ) -> CloudResult<Option<(i64, Option<String>)>> {
        Ok(self.ledger_template_version(name, version).await?.map(|v| {
            (
                v.version_number().unwrap_or_default(),
                v.launch_template_data()
                    .and_then(|d| d.user_data())
                    .map(String::from),
            )
        }))
    }

    /// ` (by ARN at TIME)`: who wrote a ledger version, as far as AWS says.
    pub(super) async fn ledger_writer(&self, name: &str, version: i64) -> String {
        match self
            .ledger_template_version(name, &version.to_string())
            .await
        {
            Ok(Some(v)) => format!(
                " (version {version}, by {} at {})",
                v.created_by().unwrap_or("an unknown principal"),
                v.create_time()
                    .map(|t| t.to_string())
                    .unwrap_or_else(|| "an unknown time".into())
            ),
            _ => String::new(),
        }
    }
}

#[async_trait]
impl LedgerStore for AwsCloud {
    async fn load(&self, release_name: &str) -> CloudResult<Option<Ledger>> {
        let name = ledger_template_name(release_name);
        // One call: a missing ledger is the NotFound answer, not a prior look-up.
        let mut found = self.ledger_version(&name, "$Latest").await?;
        // A ledger this process wrote moments ago may not be seen yet (AWS's reads lag its
        // writes): look again for a little while before calling it gone.
        let wrote = self.ledger_versions.lock().unwrap().contains_key(&name);
        for _ in 0..LAGGING_READ_RETRIES {
            if found.is_some() || !wrote {
                break;
            }
            tokio::time::sleep(LAGGING_READ_WAIT).await;
            found = self.ledger_version(&name, "$Latest").await?;
        }
        let Some((mut version, mut data)) = found else {
            self.ledger_versions.lock().unwrap().remove(&name);
            return Ok(None);
        };
        // `$Latest` can lag a write: when this process wrote a newer version, read that one.
        let known = self
            .ledger_versions
            .lock()
            .unwrap()
            .get(&name)
            .map(|s| s.version);
        if let Some(k) = known.filter(|k| *k > version) {
            if let Some((v, d)) = self.ledger_version(&name, &k.to_string()).await? {
                (version, data) = (v, d);
            }
        }
        self.ledger_versions.lock().unwrap().insert(
            name.clone(),
            LedgerSeen {
                version,
                conflict: None,
            },
        );
        let Some(data) = data else {
            return Ok(None);
        };
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(data)
            .map_err(|e| CloudError::Api {
                action: format!("reading release ledger ({name})"),
                code: crate::ledger::UNREADABLE.into(),
                message: e.to_string(),
            })?;
        let text = String::from_utf8_lossy(&bytes);
        Ledger::from_json(&text)
            .map(Some)
            .map_err(|message| CloudError::Api {
                action: format!("reading release ledger ({name})"),
                code: crate::ledger::UNREADABLE.into(),
                message,
            })
    }

    async fn save(&self, ledger: &Ledger, tags: &BTreeMap<String, String>) -> CloudResult<()> {
        let name = ledger_template_name(&ledger.name);
        let seen = self.ledger_versions.lock().unwrap().get(&name).cloned();
        if let Some(why) = seen.as_ref().and_then(|s| s.conflict.clone()) {
            return Err(CloudError::Api {
                action: format!("writing release ledger ({name})"),
                code: "LedgerConflict".into(),
                message: why,
            });
        }
        let (text, trimmed) = ledger.to_stored_json();
        if trimmed > 0 {
            crate::log::notice(
                &ledger.name,
                format!("the oldest {trimmed} history entries were left out of the ledger ({name}), which AWS caps at 16 KB; the newest {} are kept", ledger.history.len() - trimmed),
            );
        }
        let data = ec2::types::RequestLaunchTemplateData::builder()
            .user_data(base64::engine::general_purpose::STANDARD.encode(text))
            .build();
        // Most saves append a version to an existing ledger; the first one creates it.
        let appended = self
            .ec2
            .create_launch_template_version()
            .launch_template_name(&name)
            .version_description("immutable_release ledger: not for launching")
            .launch_template_data(data.clone())
            .send()
            .await;
        let written = match appended {
            Ok(out) => out
                .launch_template_version()
                .and_then(|v| v.version_number())
                .unwrap_or_default(),
            Err(e)
                if !e
                    .code()
                    .is_some_and(|c| c.starts_with("InvalidLaunchTemplateName")) =>
            {
                return Err(err(format!("writing release ledger ({name})"))(e));
            }
            Err(_) => {
                self.create_record_template(&name, "ledger", data, tags)
                    .await
                    .map_err(err(format!("creating release ledger ({name})")))?
                    .1
            }
        };
        // Versions are numbered one after another: a gap means another write came between
        // this process's read and this write. Then this write is taken back (the other
        // stays the latest) and nothing more is written until the ledger is read again.
        if let Some(seen) = seen.filter(|s| s.version > 0 && written != s.version + 1) {
            return Err(self.take_back(&name, seen.version, written).await);
        }
        self.ledger_versions.lock().unwrap().insert(
            name.clone(),
            LedgerSeen {
                version: written,
                conflict: None,
            },
        );
        self.prune_ledger(&name, written).await;
        Ok(())
    }

    async fn delete(&self, release_name: &str) -> CloudResult<()> {
        let name = ledger_template_name(release_name);
        self.ledger_versions.lock().unwrap().remove(&name);
        self.delete_launch_template(&name).await
    }

    async fn create_lease(
        &self,
        release_name: &str,
        tags: &BTreeMap<String, String>,
    ) -> CloudResult<Option<String>> {
        let name = lease_template_name(release_name);
        let data = ec2::types::RequestLaunchTemplateData::builder()
            .user_data(base64::engine::general_purpose::STANDARD.encode("lease"))
            .build();
        // Launch template names are unique in a region: creating one is an atomic test-and-set.
        match self
            .create_record_template(&name, "lease", data, tags)
            .await
        {
            Ok((id, _)) => Ok(Some(id)),
            Err(e) if e.code().is_some_and(|c| c.contains("AlreadyExists")) => Ok(None),
            Err(e) => Err(err(format!("taking the release lease ({name})"))(e)),
        }
    }

    async fn read_lease(&self, release_name: &str) -> CloudResult<Option<LeaseRecord>> {
        Ok(self
            .find_launch_template(&lease_template_name(release_name))
            .await?
            .map(|(id, tags)| LeaseRecord { id, tags }))
    }

    async fn renew_lease(&self, id: &str, tags: &BTreeMap<String, String>) -> CloudResult<()> {
        self.ec2
            .create_tags()
            .resources(id)
            .set_tags(Some(ec2_tags(tags)))
            .send()
            .await
            .map_err(err(format!("renewing the release lease ({id})")))?;
        Ok(())
    }

    async fn delete_lease(&self, id: &str) -> CloudResult<()> {
        match self
            .ec2
            .delete_launch_template()
            .launch_template_id(id)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e)
                if e.code()
                    .is_some_and(|c| c.starts_with("InvalidLaunchTemplateId")) =>
            {
                Ok(())
            }
            Err(e) => Err(err(format!("giving back the release lease ({id})"))(e)),
        }
    }
}
