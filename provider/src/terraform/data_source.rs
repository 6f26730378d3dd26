//! The `immutable_release` data source: a release read by name from AWS.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tf_provider::schema::Schema;
use tf_provider::value::{Value, ValueEmpty};
use tf_provider::{DataSource, Diagnostics};

use super::resource::{fill, report};
use super::state::{HistoryItem, ReleaseState};
use super::{context, schema, SharedContext};

/// The data source's value.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ReleaseDataState {
    id: Value<String>,
    name: Value<String>,
    image_id: Value<String>,
    release: Value<i64>,
    fleet_name: Value<String>,
    target_group_arn: Value<String>,
    launch_template_id: Value<String>,
    previous_image_id: Value<String>,
    traffic: Value<BTreeMap<String, i64>>,
    history: Value<Vec<HistoryItem>>,
    holding: Value<super::state::HoldingBlock>,
}

/// The data source.
pub struct ReleaseDataSource {
    shared: SharedContext,
}

impl ReleaseDataSource {
    /// A data source that uses the provider's context once configured.
    pub fn new(shared: SharedContext) -> Self {
        Self { shared }
    }
}

#[async_trait]
impl DataSource for ReleaseDataSource {
    type State<'a> = ReleaseDataState;
    type ProviderMetaState<'a> = ValueEmpty;

    fn schema(&self, _diags: &mut Diagnostics) -> Option<Schema> {
        Some(schema::release_data_source_schema())
    }

    async fn read<'a>(
        &self,
        diags: &mut Diagnostics,
        config: Self::State<'a>,
        _meta: Self::ProviderMetaState<'a>,
    ) -> Option<Self::State<'a>> {
        let ctx = context(&self.shared, diags)?;
        let name = config.name.as_ref_option().cloned().unwrap_or_default();
        let obs = match ctx.engine.observe(&name).await {
            Ok(Some(o)) => o,
            Ok(None) => {
                diags.root_error(
                    "Release not found",
                    format!("no release named {name:?} exists in this region"),
                );
                return None;
            }
            Err(e) => {
                report(diags, e);
                return None;
            }
        };
        let mut s = ReleaseState::default();
        fill(&mut s, &obs);
        Some(ReleaseDataState {
            id: s.id,
            name: s.name,
            image_id: s.image_id,
            release: s.release,
            fleet_name: s.fleet_name,
            target_group_arn: s.target_group_arn,
            launch_template_id: s.launch_template_id,
            previous_image_id: s.previous_image_id,
            traffic: s.traffic,
            history: s.history,
            holding: s.holding,
        })
    }
}
