//! Recovery: what an interrupted or stopped apply left (a half-made fleet, a lost ledger,
//! a broken serving fleet) found and finished or removed, and the end of a release that
//! cannot go on (a stop: `halt`; a failure: `abort`), traffic always back where it was.

use super::traffic::Restored;
use super::*;

impl Engine {
    /// Rebuilds a lost ledger from the ownership tags of the release's groups and from the
    /// route (the fleet it gives the most weight serves; a fleet tagged `retained` is kept
    /// for rollback; any other is a half-made one for the next apply to settle), and saves
    /// it; the caller has just found no ledger. None when no group of the release exists.
    /// Release numbers go on from the highest found.
    pub async fn rebuild(&self, name: &str, route: &Route) -> EngineResult<Option<Ledger>> {
        let groups: Vec<GroupStatus> = self
            .cloud
            .fleets
            .groups_of_release(name)
            .await?
            .into_iter()
            .filter(|g| {
                !g.deleting && g.tags.get(TAG_RELEASE_NAME).map(String::as_str) == Some(name)
            })
            .collect();
        if groups.is_empty() {
            return Ok(None);
        }
        let weights: BTreeMap<String, i64> = match self.cloud.traffic.action(route).await? {
            Some(ListenerAction::Forward(w)) => w.into_iter().collect(),
            _ => BTreeMap::new(),
        };
        let mut ledger = Ledger::new(name, &route.listener_arn);
        ledger.rule_arn = route.rule_arn.clone();
        let mut user_tags = BTreeMap::new();
        for g in &groups {
            let Some(release) = g.tags.get(TAG_RELEASE).and_then(|r| r.parse::<u64>().ok()) else {
                continue;
            };
            let target_group_arn = match g.target_group_arns.first() {
                Some(a) => a.clone(),
                None => self
                    .cloud
                    .fleets
                    .find_target_group(&g.name)
                    .await?
                    .map(|t| t.arn)
                    .unwrap_or_default(),
            };
            ledger
                .fleets
                .push(record_from_tags(g, release, target_group_arn));
            ledger.next_release = ledger.next_release.max(release + 1);
            user_tags.extend(
                g.tags
                    .iter()
                    .filter(|(k, _)| !k.starts_with("immutable:") && !k.starts_with("aws:"))
                    .map(|(k, v)| (k.clone(), v.clone())),
            );
        }
        // The route is the truth about who serves.
        ledger.roles_from_route(&weights, &self.now_rfc3339());
        let mut tags = user_tags;
        tags.insert(TAG_RELEASE_NAME.into(), name.into());
        tags.insert(TAG_PHASE.into(), "ledger".into());
        self.cloud.ledger.save(&ledger, &tags).await?;
        log::warn(format!(
            "release {name}: the ledger was missing; rebuilt from the tags of {} fleet(s)",
            ledger.fleets.len()
        ));
        Ok(Some(ledger))
    }

    /// Why the serving fleet of `ledger` cannot serve as it is; `groups` holds the groups
    /// already described (the serving one is looked up if missing from it).
    /// `groups`, when given, are the described groups of every ledger fleet; `listener`,
    /// when given, the listener's action as just read.
    pub(super) async fn serving_faults(
        &self,
        ledger: &Ledger,
        groups: Option<&[GroupStatus]>,
        listener: Option<&ListenerAction>,
    ) -> EngineResult<Vec<String>> {
        let Some(active) = ledger.active() else {
            return Ok(Vec::new());
        };
        let group = match groups {
            Some(groups) => groups.iter().find(|g| g.name == active.fleet_name).cloned(),
            None => self
                .cloud
                .fleets
                .describe_groups(std::slice::from_ref(&active.fleet_name))
                .await?
                .into_iter()
                .next(),
        };
        // AWS refuses to delete a target group a listener forwards to: when the listener
        // names it, it exists, and no call is needed to say so.
        let in_listener = matches!(listener, Some(ListenerAction::Forward(w)) if w.iter().any(|(a, _)| a == &active.target_group_arn));
        let tg_exists = in_listener
            || self
                .cloud
                .fleets
                .find_target_group(&active.fleet_name)
                .await?
                .is_some_and(|t| t.arn == active.target_group_arn);
        Ok(decide::serving_faults(
            &active.fleet_name,
            (&active.launch_template_id, active.launch_template_version),
            group.as_ref(),
            tg_exists,
        ))
    }

    /// Puts right what a read reported besides weights and capacity: a broken serving fleet
    /// is replaced by a new fleet of the same arguments (all traffic at once once healthy,
    /// the broken one deleted); a half-made fleet that matches the arguments is finished,
    /// others are removed.
    /// `known`: the ledger as the caller just read it (else it is read). Returns the ledger
    /// after (None: there is none) and whether a release ran.
    pub async fn repair(
        &self,
        spec: &ReleaseSpec,
        known: Option<Ledger>,
        explicit_desired: bool,
        limit: Duration,
    ) -> EngineResult<(Option<Ledger>, bool)> {
        let ledger = match known {
            Some(l) => Some(l),
            None => self.cloud.ledger.load(&spec.name).await?,
        };
        let Some(mut ledger) = ledger else {
            return Ok((None, false));
        };
        let listener = self.cloud.traffic.action(&spec.route()).await?;
        let faults = self
            .serving_faults(&ledger, None, listener.as_ref())
            .await?;
        if !faults.is_empty() {
            log::warn(format!(
                "release {}: replacing the serving fleet: {}",
                spec.name,
                faults.join("; ")
            ));
            let after = self
                .release_as(
                    spec,
                    release::Ask {
                        explicit_desired,
                        limit,
                        broken: Some(faults.join("; ")),
                        known: Some(ledger),
                        ..Default::default()
                    },
                )
                .await?;
            return Ok((Some(after), true));
        }
        // A release the configuration keeps held stays as it is (its split is put back
        // by the caller if it drifted).
        let kept = super::kept_held(&ledger, spec).map(|f| f.release);
        let launching = ledger
            .fleets
            .iter()
            .filter(|f| f.role == Role::Launching && Some(f.release) != kept);
        if launching
            .clone()
            .any(|f| spec.fleet.matches(&f.fingerprint))
        {
            let after = self
                .release_known(spec, ledger, explicit_desired, limit)
                .await?;
            return Ok((Some(after), true));
        }
        if launching.count() > 0 {
            self.settle_leftovers(spec, &mut ledger).await?;
        }
        Ok((Some(ledger), false))
    }

    /// Fleets still `launching` in the ledger were left by an interrupted or stopped apply
    /// and never committed. Traffic goes back to the serving split first (verified). The
    /// newest one whose fleet-shaping arguments match `spec` and whose objects all still
    /// exist is kept, to be finished (returned; its target group stays in the listener at
    /// weight 0); the others are removed and recorded as aborted.
    pub(super) async fn settle_leftovers(
        &self,
        spec: &ReleaseSpec,
        ledger: &mut Ledger,
    ) -> EngineResult<Option<FleetRecord>> {
        let leftovers: Vec<FleetRecord> = ledger
            .fleets
            .iter()
            .filter(|f| f.role == Role::Launching)
            .cloned()
            .collect();
        if leftovers.is_empty() {
            return Ok(None);
        }
        let mut resumed = None;
        for f in leftovers.iter().rev() {
            if let Some(r) = self.intact(spec, f).await? {
                resumed = Some(r);
                break;
            }
        }
        match ledger.active() {
            Some(active) => {
                let idle: Vec<String> = ledger.retained_target_groups();
                let split = match &resumed {
                    // A release held part-way keeps its share (put back if it drifted).
                    Some(r) if r.held.is_some() => decide::split(
                        &r.target_group_arn,
                        r.held.as_ref().map_or(0, |h| h.weight),
                        Some(&active.target_group_arn),
                        &idle,
                    ),
                    _ => {
                        let mut idle = idle;
                        idle.extend(resumed.iter().map(|r| r.target_group_arn.clone()));
                        decide::split(&active.target_group_arn, 100, None, &idle)
                    }
                };
                self.set_traffic(spec, &split).await?;
            }
            None => {
                // The leftovers to remove (not the one resumed) leave the route: their share
                // goes back to what else it forwards to (an adopted service's target group),
                // else the route answers 503.
                let keep = resumed.as_ref().map(|r| r.release);
                let removed: Vec<&str> = leftovers
                    .iter()
                    .filter(|f| Some(f.release) != keep)
                    .map(|f| f.target_group_arn.as_str())
                    .collect();
                if let Some(ListenerAction::Forward(w)) =
                    self.cloud.traffic.action(&spec.route()).await?
                {
                    if w.iter().any(|(a, _)| removed.contains(&a.as_str())) {
                        let back = decide::without(&w, &removed);
                        if back.is_empty() {
                            self.cloud
                                .traffic
                                .fixed_response(&spec.route(), 503)
                                .await?;
                        } else {
                            self.set_traffic(spec, &back).await?;
                        }
                    }
                }
            }
        }
        let keep = resumed.as_ref().map(|r| r.release);
        for f in leftovers.into_iter().filter(|f| Some(f.release) != keep) {
            self.remove_leftover(spec, ledger, &f).await?;
        }
        self.cloud
            .ledger
            .save(ledger, &Self::ledger_tags(spec))
            .await?;
        Ok(resumed)
    }

    /// Removes a fleet an interrupted apply left half-made (its health-check rule, found by
    /// record or token, then its objects) and records it as aborted.
    async fn remove_leftover(
        &self,
        spec: &ReleaseSpec,
        ledger: &mut Ledger,
        f: &FleetRecord,
    ) -> EngineResult<()> {
        log::warn(match &f.held {
            Some(h) => format!(
                "release {}: abandoning {}, held at {} %",
                spec.name, f.fleet_name, h.weight
            ),
            None => format!(
                "release {}: removing {}, left half-made by an interrupted apply",
                spec.name, f.fleet_name
            ),
        });
        if let Some(rule) = &f.health_rule_arn {
            self.cloud.traffic.delete_rule(rule).await?;
        }
        self.sweep_health_rules(&spec.listener_arn, &f.fleet_name)
            .await?;
        self.delete_fleet(
            &spec.route(),
            &f.fleet_name,
            Some(&f.target_group_arn)
                .filter(|a| !a.is_empty())
                .map(String::as_str),
        )
        .await?;
        ledger.fleets.retain(|x| x.release != f.release);
        let reason = match (&f.held, &f.stopped) {
            (Some(h), _) => format!("abandoned while held at {} %", h.weight),
            (None, Some(at)) => format!("{at}; removed by the next apply"),
            (None, None) => "interrupted apply; removed by the next apply".to_string(),
        };
        let now = self.now_rfc3339();
        let started = ledger
            .history
            .iter()
            .find(|h| h.release == f.release)
            .map_or_else(|| now.clone(), |h| h.started_at.clone());
        ledger.record_aborted(f, started, now, &reason, spec.history_limit as usize);
        if f.held.is_some() {
            self.notify(
                spec,
                Note::of(
                    crate::notify::Event::Aborted,
                    f,
                    ledger.active().map(|a| a.fleet_name.as_str()),
                    serving_alone(ledger),
                )
                .because(reason),
            );
        }
        Ok(())
    }

    /// A leftover fleet, with its IDs filled in from AWS, when it matches `spec` and all its
    /// objects exist, carry the release's ownership and fingerprint tags, and fit together
    /// (the group runs the template and feeds the target group). A kill can land between
    /// any two calls, so the ledger record may lack IDs the tags still tell.
    pub(super) async fn intact(
        &self,
        spec: &ReleaseSpec,
        f: &FleetRecord,
    ) -> EngineResult<Option<FleetRecord>> {
        if !spec.fleet.matches(&f.fingerprint) {
            return Ok(None);
        }
        let ours = |tags: &BTreeMap<String, String>| {
            tags.get(TAG_RELEASE_NAME) == Some(&spec.name)
                && tags
                    .get(TAG_FINGERPRINT)
                    .is_some_and(|t| spec.fleet.matches(t))
        };
        let Some(group) = self
            .cloud
            .fleets
            .describe_groups(std::slice::from_ref(&f.fleet_name))
            .await?
            .into_iter()
            .next()
        else {
            return Ok(None);
        };
        let Some((group_lt, group_version)) = group.launch_template.clone() else {
            return Ok(None);
        };
        if group.deleting || !ours(&group.tags) {
            return Ok(None);
        }
        let Some((lt_id, lt_tags)) = self
            .cloud
            .fleets
            .find_launch_template(&f.fleet_name)
            .await?
        else {
            return Ok(None);
        };
        let Some(tg) = self.cloud.fleets.find_target_group(&f.fleet_name).await? else {
            return Ok(None);
        };
        let Ok(version) = group_version.parse::<i64>() else {
            return Ok(None);
        };
        let fits = ours(&lt_tags)
            && ours(&tg.tags)
            && lt_id == group_lt
            && group.target_group_arns.contains(&tg.arn)
            && (f.launch_template_id.is_empty() || f.launch_template_id == lt_id)
            && (f.target_group_arn.is_empty() || f.target_group_arn == tg.arn);
        if !fits {
            return Ok(None);
        }
        let mut r = f.clone();
        r.launch_template_id = lt_id;
        r.launch_template_version = version;
        r.target_group_arn = tg.arn;
        Ok(Some(r))
    }

    /// Ends a release that did not finish: stopped (Ctrl-C, SIGINT, SIGTERM) → [`Self::halt`],
    /// anything else → [`Self::abort`].
    pub(super) async fn fail(
        &self,
        spec: &ReleaseSpec,
        ledger: Ledger,
        record: &FleetRecord,
        previous: &RouteState,
        started_at: &str,
        reason: String,
    ) -> EngineError {
        match self.stop.requested() {
            Some(why) => {
                self.halt(spec, ledger, record, previous, &why, &reason)
                    .await
            }
            None => {
                self.abort(spec, ledger, record, previous, started_at, reason)
                    .await
            }
        }
    }

    /// A graceful stop: traffic back on the split that served before the release (verified),
    /// the new fleet kept out of traffic and recorded as stopped, so that the next apply
    /// finishes it (same arguments) or removes it. Nothing slow: no deletion waits.
    pub(super) async fn halt(
        &self,
        spec: &ReleaseSpec,
        mut ledger: Ledger,
        record: &FleetRecord,
        previous: &RouteState,
        why: &str,
        during: &str,
    ) -> EngineError {
        log::warn(format!("release {}: stopping: {why}", record.fleet_name));
        let restored = self
            .restore_until_read_back(spec, previous, &record.target_group_arn)
            .await;
        let at = format!(
            "{} at {}",
            // "canary pause at 10 %: …", "setting listener (arn:aws:…) weights: …": the
            // step, up to the first ": " (ARNs hold colons).
            during.split(": ").next().unwrap_or(during),
            self.now_rfc3339()
        );
        self.notify(
            spec,
            aborted_note(&ledger, record, previous, &restored).because(format!(
                "stopped ({why}) during {at}; the next apply finishes it or removes it"
            )),
        );
        let mut stopped = record.clone();
        stopped.stopped = Some(at.clone());
        ledger.update_fleet(&stopped);
        let saved = self
            .cloud
            .ledger
            .save(&ledger, &Self::ledger_tags(spec))
            .await;
        self.tag_phase(&record.fleet_name, "stopped").await;
        let mut traffic = match (ledger.active(), &restored) {
            (Some(a), Restored::Back { .. }) => format!(
                "Traffic is back on release {} ({}).",
                current_release(&ledger).unwrap_or(a.release),
                a.fleet_name
            ),
            (None, Restored::Back { .. }) => {
                "The listener's default action is back as it was.".to_string()
            }
            (_, not_back) => not_back_words(&ledger, record, not_back, spec.rule_arn.is_some()),
        };
        traffic.push_str(&format!(
            " Fleet {} was kept out of traffic: the next apply finishes this release if the configuration still asks for it, or removes it.",
            record.fleet_name
        ));
        if let Err(e) = saved {
            traffic.push_str(&format!(" Recording the stop failed: {e}."));
        }
        EngineError::Aborted {
            summary: format!("release {} stopped", record.fleet_name),
            reason: format!("{why}, {at}"),
            traffic,
        }
    }

    /// Aborts a release: traffic back where it was (verified), the new fleet deleted, the
    /// attempt recorded. Returns the error to report.
    pub(super) async fn abort(
        &self,
        spec: &ReleaseSpec,
        mut ledger: Ledger,
        record: &FleetRecord,
        previous: &RouteState,
        started_at: &str,
        reason: String,
    ) -> EngineError {
        log::warn(format!("release {}: aborting: {reason}", record.fleet_name));
        let mut problems = Vec::new();
        let restored = self
            .restore_until_read_back(spec, previous, &record.target_group_arn)
            .await;
        if let Restored::Back { had_traffic: true } = restored {
            // It served a share until moments ago: its requests in flight finish first.
            self.drain(spec, &record.fleet_name).await;
        }
        if let Some(rule) = &record.health_rule_arn {
            if let Err(e) = self.cloud.traffic.delete_rule(rule).await {
                problems.push(format!("removing the health-check rule failed: {e}"));
            }
        }
        // A route not put back may still send the new fleet traffic: it is kept (the next
        // apply puts traffic back first, then removes it).
        if matches!(restored, Restored::Back { .. }) {
            if let Err(e) = self
                .delete_fleet(
                    &spec.route(),
                    &record.fleet_name,
                    Some(&record.target_group_arn),
                )
                .await
            {
                problems.push(format!("removing {} failed: {e}", record.fleet_name));
            } else {
                ledger.fleets.retain(|f| f.release != record.release);
            }
        }
        ledger.record_aborted(
            record,
            started_at.to_string(),
            self.now_rfc3339(),
            &reason,
            spec.history_limit as usize,
        );
        self.notify(
            spec,
            aborted_note(&ledger, record, previous, &restored).because(match &restored {
                Restored::Back { .. } => reason.clone(),
                _ => format!(
                    "{reason} (traffic could NOT be put back: the next apply puts it back first)"
                ),
            }),
        );
        // A first release that never served leaves nothing behind, its ledger included.
        let saved = if ledger.fleets.is_empty() {
            self.cloud.ledger.delete(&spec.name).await
        } else {
            self.cloud
                .ledger
                .save(&ledger, &Self::ledger_tags(spec))
                .await
        };
        if let Err(e) = saved {
            problems.push(format!("recording the abort failed: {e}"));
        }
        let traffic = match &restored {
            Restored::Back { had_traffic } => traffic_after_abort(
                &ledger,
                &previous.last,
                spec.rule_arn.is_some(),
                *had_traffic,
            ),
            not_back => not_back_words(&ledger, record, not_back, spec.rule_arn.is_some()),
        };
        let traffic = if problems.is_empty() {
            traffic
        } else {
            format!("{traffic} Clean-up was incomplete: {}", problems.join("; "))
        };
        EngineError::Aborted {
            summary: format!("release {} aborted", record.fleet_name),
            reason,
            traffic,
        }
    }
}

/// The `aborted` notification of `record`: the split put back, when it was.
fn aborted_note(
    ledger: &Ledger,
    record: &FleetRecord,
    previous: &RouteState,
    restored: &Restored,
) -> Note {
    Note::of(
        crate::notify::Event::Aborted,
        record,
        ledger.active().map(|a| a.fleet_name.as_str()),
        match restored {
            Restored::Back { .. } => Engine::named(ledger, &previous.forward()),
            _ => BTreeMap::new(),
        },
    )
}

/// A fleet's record as its group's tags tell it (a lost ledger being rebuilt): `retained`
/// when its phase tag says so, else `launching` until the route says who serves.
fn record_from_tags(g: &GroupStatus, release: u64, target_group_arn: String) -> FleetRecord {
    let (launch_template_id, launch_template_version) = g
        .launch_template
        .clone()
        .map(|(id, v)| (id, v.parse().unwrap_or(0)))
        .unwrap_or_default();
    let retained = g.tags.get(TAG_PHASE).map(String::as_str) == Some("retained");
    FleetRecord {
        release,
        fleet_name: g.name.clone(),
        launch_template_id,
        launch_template_version,
        image_id: g.tags.get(TAG_IMAGE).cloned().unwrap_or_default(),
        fingerprint: g.tags.get(TAG_FINGERPRINT).cloned().unwrap_or_default(),
        role: if retained {
            Role::Retained
        } else {
            Role::Launching
        },
        last_served: release,
        health_rule_arn: None,
        stopped: None,
        progress: None,
        // A fleet held part-way says so in its phase tag (`held-<weight>`).
        held: g
            .tags
            .get(TAG_PHASE)
            .and_then(|p| p.strip_prefix("held-"))
            .and_then(|w| w.parse().ok())
            .map(|weight| crate::ledger::Held {
                weight,
                since: String::new(),
            }),
        // Whether it carries policies is not told by its tags: it may.
        scaling: true,
        target_group_arn,
    }
}

/// Where traffic is after an abort whose route read back as it was, in the words of its
/// diagnostic: on the release that served (back on it when the new fleet had a share), or
/// on the route's own action when none did.
fn traffic_after_abort(
    ledger: &Ledger,
    before: &ListenerAction,
    rule: bool,
    had_traffic: bool,
) -> String {
    match (ledger.active(), before) {
        (Some(a), _) => format!(
            "Traffic {} release {} ({}).",
            if had_traffic {
                "is back on"
            } else {
                "stayed on"
            },
            current_release(ledger).unwrap_or(a.release),
            a.fleet_name
        ),
        (None, ListenerAction::Forward(w)) if w.iter().any(|(_, x)| *x > 0) => format!(
            "Traffic {} target group {} as it was (the service the release was adopting).",
            if had_traffic {
                "is back on"
            } else {
                "stayed on"
            },
            w.iter()
                .filter(|(_, x)| *x > 0)
                .map(|(a, _)| crate::naming::target_group_name(a))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        (None, ListenerAction::Fixed(code)) => format!(
            "No release was serving; the {} answers {code} as before.",
            if rule { "listener rule" } else { "listener" }
        ),
        (None, _) => format!(
            "No release was serving; the {} is as it was.",
            if rule {
                "listener rule's action"
            } else {
                "listener's default action"
            }
        ),
    }
}

/// The words of a route that could not be put back: what it forwards as last read, by fleet
/// name where the ledger knows the target group, and what happens next.
fn not_back_words(
    ledger: &Ledger,
    record: &FleetRecord,
    restored: &Restored,
    rule: bool,
) -> String {
    let Restored::NotBack {
        error,
        read,
        attempts,
    } = restored
    else {
        return String::new();
    };
    let route = if rule { "listener rule" } else { "listener" };
    let name_of = |arn: &str| {
        ledger
            .fleets
            .iter()
            .chain(std::iter::once(record))
            .find(|f| f.target_group_arn == arn)
            .map(|f| f.fleet_name.clone())
            .unwrap_or_else(|| arn.rsplit(':').next().unwrap_or(arn).to_string())
    };
    let reads = match read {
        Some(ListenerAction::Forward(w)) => {
            let split: Vec<String> = w
                .iter()
                .map(|(tg, n)| format!("{} {n}", name_of(tg)))
                .collect();
            format!("forwards to {}", split.join(", "))
        }
        Some(ListenerAction::Fixed(code)) => format!("answers {code}"),
        Some(ListenerAction::Other(t)) => format!("does `{t}`"),
        None => "could not be read".to_string(),
    };
    let serving = ledger
        .active()
        .map(|a| {
            format!(
                "release {} ({})",
                current_release(ledger).unwrap_or(a.release),
                a.fleet_name
            )
        })
        .unwrap_or_else(|| format!("the {route}'s action as it was"));
    format!(
        "Traffic could NOT be put back on {serving} after {attempts} attempts ({error}): the {route} {reads} as last read. Fleet {} was kept; the next apply puts traffic back on {serving} (verified) before anything else.",
        record.fleet_name
    )
}
