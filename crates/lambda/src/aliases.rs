//! Aliases: CreateAlias, GetAlias, UpdateAlias, DeleteAlias, ListAliases, and the resolution
//! of an alias qualifier to the version it points to (with weighted routing for Invoke).
//!
//! Storage: `lambda.aliases/<function>/<alias>`, an [`AliasRecord`]. Alias writes, publishing
//! and version deletion all run under the service's write lock, so "every version an alias
//! points to exists" holds at each commit: deleting a version an alias uses is refused, and
//! deleting the function removes its aliases in the same commit.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use stratus_store::{Expect, Op, StoreError};

use crate::model::FunctionRecord;
use crate::names::FunctionRef;
use crate::records::{ALIASES, LATEST, decode, encode, is_version_number, new_revision, page_size};
use crate::{FunctionConfig, FunctionService, FunctionView, LambdaError, validate};

/// An alias as stored. Field names are the storage format.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct AliasRecord {
    pub name: String,
    /// `$LATEST` or a published version number.
    pub function_version: String,
    pub description: String,
    /// At most one additional published version, and the share of invocations it receives.
    pub routing: BTreeMap<String, f64>,
    pub revision_id: String,
}

/// An alias as the operations return it.
#[derive(Debug, Clone, PartialEq)]
pub struct AliasView {
    pub arn: String,
    pub name: String,
    pub function_version: String,
    pub description: String,
    /// Additional version → weight (0.0 ≤ w < 1.0); empty without weighted routing.
    pub routing: BTreeMap<String, f64>,
    pub revision_id: String,
}

/// CreateAlias's input.
#[derive(Debug, Clone, Default)]
pub struct CreateAlias {
    pub name: String,
    pub function_version: String,
    pub description: Option<String>,
    pub routing: Option<BTreeMap<String, f64>>,
}

/// UpdateAlias's input: only the given fields change; `routing: Some(empty)` removes routing.
#[derive(Debug, Clone, Default)]
pub struct UpdateAlias {
    pub function_version: Option<String>,
    pub description: Option<String>,
    pub routing: Option<BTreeMap<String, f64>>,
    pub revision_id: Option<String>,
}

/// One page of ListAliases.
#[derive(Debug, Clone)]
pub struct AliasPage {
    pub aliases: Vec<AliasView>,
    pub next_marker: Option<String>,
}

const ALIAS_PATTERN: &str =
    "Member must satisfy regular expression pattern: (?!^[0-9]+$)([a-zA-Z0-9-_]+)";

/// The model's `Alias` shape: 1–128 of `[a-zA-Z0-9-_]`, not all digits (that is a version).
fn check_alias_name(name: &str) -> Result<(), LambdaError> {
    if name.is_empty() {
        return Err(validate::constraint(
            name,
            "name",
            "Member must have length greater than or equal to 1",
        ));
    }
    validate::max_len(name, "name", 128)?;
    let charset = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !charset || is_version_number(name) {
        return Err(validate::constraint(name, "name", ALIAS_PATTERN));
    }
    Ok(())
}

/// The model's `VersionWithLatestPublished` shape.
fn check_function_version(v: &str) -> Result<(), LambdaError> {
    validate::max_len(v, "functionVersion", 1024)?;
    if !(v == LATEST || v == "$LATEST.PUBLISHED" || is_version_number(v)) {
        return Err(validate::constraint(
            v,
            "functionVersion",
            "Member must satisfy regular expression pattern: (\\$LATEST(\\.PUBLISHED)?|[0-9]+)",
        ));
    }
    Ok(())
}

/// The model's constraints on `AdditionalVersionWeights` entries. AWS refuses a weight of 1.0
/// as well (all the traffic on the additional version is what FunctionVersion is for), with the
/// model's wording.
fn check_weights(routing: &BTreeMap<String, f64>) -> Result<(), LambdaError> {
    for (version, weight) in routing {
        let value = format!("{{{version}={weight:?}}}");
        if version.len() > 1024 || !is_version_number(version) {
            return Err(validate::constraint(
                value,
                "routingConfig.additionalVersionWeights",
                "Map keys must satisfy constraint: [Member must have length less than or equal to 1024, \
                 Member must have length greater than or equal to 1, \
                 Member must satisfy regular expression pattern: [0-9]+]",
            ));
        }
        if !(0.0..1.0).contains(weight) {
            return Err(validate::constraint(
                value,
                "routingConfig.additionalVersionWeights",
                "Map value must satisfy constraint: [Member must have value less than or equal to 1.0, \
                 Member must have value greater than or equal to 0.0]",
            ));
        }
    }
    Ok(())
}

/// The version one invocation of `alias` runs: the additional version with probability equal
/// to its weight, the alias's FunctionVersion otherwise. `u` is uniform in `[0, 1)`.
pub(crate) fn pick_version(alias: &AliasRecord, u: f64) -> &str {
    match alias.routing.iter().next() {
        Some((extra, weight)) if u < *weight => extra,
        _ => &alias.function_version,
    }
}

fn alias_key(function: &str, alias: &str) -> String {
    format!("{function}/{alias}")
}

impl FunctionService {
    fn alias_arn(&self, function: &str, alias: &str) -> String {
        self.scope().qualified_arn(function, alias)
    }

    fn alias_view(&self, function: &str, a: AliasRecord) -> AliasView {
        AliasView {
            arn: self.alias_arn(function, &a.name),
            name: a.name,
            function_version: a.function_version,
            description: a.description,
            routing: a.routing,
            revision_id: a.revision_id,
        }
    }

    fn load_alias(
        &self,
        function: &str,
        alias: &str,
    ) -> Result<Option<(AliasRecord, u64)>, LambdaError> {
        match self
            .inner
            .store
            .meta
            .get(ALIASES, &alias_key(function, alias))?
        {
            Some(doc) => Ok(Some((decode(&doc.value)?, doc.version))),
            None => Ok(None),
        }
    }

    fn all_aliases(&self, function: &str) -> Result<Vec<AliasRecord>, LambdaError> {
        self.inner
            .store
            .meta
            .list(ALIASES, &format!("{function}/"), None, usize::MAX)?
            .into_iter()
            .map(|(_, doc)| decode(&doc.value))
            .collect()
    }

    /// `$LATEST` or a published version of the function `rec` holds.
    fn version_config(
        &self,
        rec: &FunctionRecord,
        version: &str,
    ) -> Result<Option<FunctionConfig>, LambdaError> {
        if version == LATEST {
            return Ok(Some(rec.latest.clone()));
        }
        self.load_version(&rec.latest.name, version)
    }

    fn version_not_found(&self, function: &str, version: &str) -> LambdaError {
        self.not_found(&FunctionRef {
            name: function.to_owned(),
            qualifier: Some(version.to_owned()),
        })
    }

    /// Checks what an alias would point to, against AWS's rules for aliases and routing.
    fn check_alias_target(
        &self,
        rec: &FunctionRecord,
        version: &str,
        routing: &BTreeMap<String, f64>,
    ) -> Result<(), LambdaError> {
        let function = &rec.latest.name;
        check_function_version(version)?;
        check_weights(routing)?;
        if routing.len() > 1 {
            return Err(LambdaError::InvalidParameter(
                "Number of items in AdditionalVersionWeights cannot be greater than 1".into(),
            ));
        }
        let primary = self
            .version_config(rec, version)?
            .ok_or_else(|| self.version_not_found(function, version))?;
        let Some(extra) = routing.keys().next() else {
            return Ok(());
        };
        if extra == version {
            return Err(LambdaError::InvalidParameter(format!(
                "Invalid function version {version}. Function version {version} is already included in routing configuration."
            )));
        }
        if version == LATEST {
            return Err(LambdaError::InvalidParameter(
                "$LATEST is not supported for an alias pointing to more than 1 version".into(),
            ));
        }
        let other = self
            .load_version(function, extra)?
            .ok_or_else(|| self.version_not_found(function, extra))?;
        // Lambda's documented requirements for an alias that points to two versions.
        if other.role != primary.role {
            return Err(LambdaError::InvalidParameter(format!(
                "Versions {version} and {extra} have different execution roles: \
                 both versions of a weighted alias must have the same role."
            )));
        }
        if other.dead_letter_target != primary.dead_letter_target {
            return Err(LambdaError::InvalidParameter(format!(
                "Versions {version} and {extra} have different dead-letter queue configurations: \
                 both versions of a weighted alias must have the same one, or none."
            )));
        }
        Ok(())
    }

    fn commit_alias(
        &self,
        function: &str,
        a: &AliasRecord,
        expect: Expect,
    ) -> Result<(), LambdaError> {
        self.inner
            .store
            .meta
            .commit(&[Op::put(
                ALIASES,
                &alias_key(function, &a.name),
                encode(a)?,
                expect,
            )])
            .map_err(|e| match e {
                StoreError::Conflict { .. } => LambdaError::Conflict(format!(
                    "The operation cannot be performed at this time. An update is in progress for resource: {}",
                    self.alias_arn(function, &a.name)
                )),
                other => other.into(),
            })
    }

    /// CreateAlias.
    pub fn create_alias(
        &self,
        function: &str,
        input: CreateAlias,
    ) -> Result<AliasView, LambdaError> {
        let r = self.function_only(function)?;
        check_alias_name(&input.name)?;
        let description = input.description.unwrap_or_default();
        validate::max_len(&description, "description", 256)?;
        let routing = input.routing.unwrap_or_default();
        let _w = self.write_guard()?;
        let (rec, _) = self.load(&r.name)?.ok_or_else(|| self.not_found(&r))?;
        if self.load_alias(&r.name, &input.name)?.is_some() {
            return Err(LambdaError::Conflict(format!(
                "Alias already exists: {}",
                self.alias_arn(&r.name, &input.name)
            )));
        }
        self.check_alias_target(&rec, &input.function_version, &routing)?;
        let alias = AliasRecord {
            name: input.name,
            function_version: input.function_version,
            description,
            routing,
            revision_id: new_revision(),
        };
        self.commit_alias(&r.name, &alias, Expect::Absent)?;
        tracing::info!(function = %r.name, alias = %alias.name, version = %alias.function_version, "alias created");
        Ok(self.alias_view(&r.name, alias))
    }

    /// GetAlias.
    pub fn get_alias(&self, function: &str, alias: &str) -> Result<AliasView, LambdaError> {
        let r = self.function_only(function)?;
        check_alias_name(alias)?;
        self.load(&r.name)?.ok_or_else(|| self.not_found(&r))?;
        let (a, _) = self.load_alias(&r.name, alias)?.ok_or_else(|| {
            LambdaError::NotFound(format!(
                "Cannot find alias arn: {}",
                self.alias_arn(&r.name, alias)
            ))
        })?;
        Ok(self.alias_view(&r.name, a))
    }

    /// UpdateAlias.
    pub fn update_alias(
        &self,
        function: &str,
        alias: &str,
        input: UpdateAlias,
    ) -> Result<AliasView, LambdaError> {
        let r = self.function_only(function)?;
        check_alias_name(alias)?;
        if let Some(d) = &input.description {
            validate::max_len(d, "description", 256)?;
        }
        let _w = self.write_guard()?;
        let (rec, _) = self.load(&r.name)?.ok_or_else(|| self.not_found(&r))?;
        let (mut a, doc_version) = self.load_alias(&r.name, alias)?.ok_or_else(|| {
            LambdaError::NotFound(format!(
                "Alias not found: {}",
                self.alias_arn(&r.name, alias)
            ))
        })?;
        if let Some(rev) = input.revision_id.as_deref()
            && rev != a.revision_id
        {
            return Err(LambdaError::PreconditionFailed(
                "The Revision Id provided does not match the latest Revision Id. \
                 Call the GetFunction/GetAlias API to retrieve the latest Revision Id"
                    .into(),
            ));
        }
        if let Some(v) = input.function_version {
            a.function_version = v;
        }
        if let Some(d) = input.description {
            a.description = d;
        }
        if let Some(routing) = input.routing {
            a.routing = routing;
        }
        self.check_alias_target(&rec, &a.function_version, &a.routing)?;
        a.revision_id = new_revision();
        self.commit_alias(&r.name, &a, Expect::Version(doc_version))?;
        tracing::info!(function = %r.name, alias = %a.name, version = %a.function_version, "alias updated");
        Ok(self.alias_view(&r.name, a))
    }

    /// DeleteAlias. Deleting an alias that does not exist succeeds, as on AWS.
    pub fn delete_alias(&self, function: &str, alias: &str) -> Result<(), LambdaError> {
        let r = self.function_only(function)?;
        check_alias_name(alias)?;
        let _w = self.write_guard()?;
        self.load(&r.name)?.ok_or_else(|| self.not_found(&r))?;
        if self.load_alias(&r.name, alias)?.is_none() {
            return Ok(());
        }
        let mut ops = vec![Op::delete(
            ALIASES,
            &alias_key(&r.name, alias),
            Expect::Present,
        )];
        // Its resource-based policy goes with it: an alias made again starts without one.
        ops.extend(self.drop_policy_op(&r.name, alias)?);
        self.inner.store.meta.commit(&ops)?;
        tracing::info!(function = %r.name, alias = %alias, "alias deleted");
        Ok(())
    }

    /// ListAliases, in name order; `function_version` keeps the aliases whose FunctionVersion
    /// it is. The marker is the last alias name of the previous page.
    pub fn list_aliases(
        &self,
        function: &str,
        function_version: Option<&str>,
        marker: Option<&str>,
        max_items: Option<i64>,
    ) -> Result<AliasPage, LambdaError> {
        let r = self.function_only(function)?;
        let limit = page_size(max_items)?;
        let function_version = function_version.filter(|v| !v.is_empty());
        if let Some(v) = function_version {
            check_function_version(v)?;
        }
        self.load(&r.name)?.ok_or_else(|| self.not_found(&r))?;
        let start_after = marker
            .filter(|m| !m.is_empty())
            .map(|m| alias_key(&r.name, m));
        let mut aliases = Vec::new();
        for (_, doc) in self.inner.store.meta.list(
            ALIASES,
            &format!("{}/", r.name),
            start_after.as_deref(),
            usize::MAX,
        )? {
            let a: AliasRecord = decode(&doc.value)?;
            if function_version.is_none_or(|v| v == a.function_version) {
                aliases.push(self.alias_view(&r.name, a));
                // One more than fits says whether another page follows.
                if aliases.len() > limit {
                    break;
                }
            }
        }
        let next_marker = if aliases.len() > limit {
            aliases.truncate(limit);
            aliases.last().map(|a| a.name.clone())
        } else {
            None
        };
        Ok(AliasPage {
            aliases,
            next_marker,
        })
    }

    // ---- Used by the rest of the service ---------------------------------------------------

    /// The RevisionId of alias `alias` of `function`, if it exists.
    pub(crate) fn alias_revision(
        &self,
        function: &str,
        alias: &str,
    ) -> Result<Option<String>, LambdaError> {
        Ok(self
            .load_alias(function, alias)?
            .map(|(a, _)| a.revision_id))
    }

    /// Ops deleting every alias of `function`, for DeleteFunction's single commit.
    pub(crate) fn alias_delete_ops(&self, function: &str) -> Result<Vec<Op>, LambdaError> {
        Ok(self
            .inner
            .store
            .meta
            .list(ALIASES, &format!("{function}/"), None, usize::MAX)?
            .into_iter()
            .map(|(key, _)| Op::delete(ALIASES, &key, Expect::Present))
            .collect())
    }

    /// Refuses to delete a version an alias points to, directly or by its routing.
    pub(crate) fn check_version_unaliased(
        &self,
        function: &str,
        version: &str,
    ) -> Result<(), LambdaError> {
        let users: Vec<String> = self
            .all_aliases(function)?
            .into_iter()
            .filter(|a| a.function_version == version || a.routing.contains_key(version))
            .map(|a| a.name)
            .collect();
        if users.is_empty() {
            return Ok(());
        }
        Err(LambdaError::Conflict(format!(
            "Unable to delete version because the following aliases reference it: [{}]",
            users.join(", ")
        )))
    }

    /// GetFunction / GetFunctionConfiguration through an alias: the configuration of the
    /// version the alias points to (its FunctionVersion; routing is for invocations), under
    /// the alias's ARN, as AWS answers.
    pub(crate) fn get_through_alias(
        &self,
        r: &FunctionRef,
        rec: &FunctionRecord,
        alias: &str,
    ) -> Result<FunctionView, LambdaError> {
        let (a, _) = self
            .load_alias(&r.name, alias)?
            .ok_or_else(|| self.not_found(r))?;
        let config = self
            .version_config(rec, &a.function_version)?
            .ok_or_else(|| self.not_found(r))?;
        let mut view = self.view(config, rec);
        view.arn = self.alias_arn(&r.name, alias);
        Ok(view)
    }

    /// What Invoke runs for `name` and `qualifier`: like [`Self::get`], except that an alias
    /// with weighted routing picks its additional version with the configured probability.
    /// The returned configuration's `version` is the version that runs (the
    /// `X-Amz-Executed-Version`); its `arn` is the ARN the caller invoked.
    pub fn resolve_for_invoke(
        &self,
        name: &str,
        qualifier: Option<&str>,
    ) -> Result<FunctionView, LambdaError> {
        let r = FunctionRef::parse(name, qualifier, self.scope())?;
        let Some(q) = r.qualifier.as_deref() else {
            return self.get(name, qualifier);
        };
        if q == LATEST || is_version_number(q) {
            let mut view = self.get(name, qualifier)?;
            view.arn = self.scope().qualified_arn(&r.name, q);
            return Ok(view);
        }
        let (rec, _) = self.load(&r.name)?.ok_or_else(|| self.not_found(&r))?;
        let (a, _) = self
            .load_alias(&r.name, q)?
            .ok_or_else(|| self.not_found(&r))?;
        let version = pick_version(&a, rand::random::<f64>());
        let config = self
            .version_config(&rec, version)?
            .ok_or_else(|| self.not_found(&r))?;
        let mut view = self.view(config, &rec);
        view.arn = self.alias_arn(&r.name, q);
        Ok(view)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn alias(version: &str, routing: &[(&str, f64)]) -> AliasRecord {
        AliasRecord {
            name: "live".into(),
            function_version: version.into(),
            description: String::new(),
            routing: routing.iter().map(|(k, w)| ((*k).to_owned(), *w)).collect(),
            revision_id: "r".into(),
        }
    }

    #[test]
    fn alias_names_follow_the_model() {
        for ok in ["live", "a", "v1", "1a", "A-b_c", &"x".repeat(128)] {
            assert!(check_alias_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "1", "0123", "$LATEST", "a b", "a:b", &"x".repeat(129)] {
            assert!(
                matches!(check_alias_name(bad), Err(LambdaError::Validation(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn function_versions_follow_the_model() {
        for ok in ["$LATEST", "1", "42", "$LATEST.PUBLISHED"] {
            assert!(check_function_version(ok).is_ok(), "{ok}");
        }
        for bad in ["", "live", "1.0", "-1", "$latest"] {
            assert!(check_function_version(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn weights_are_in_zero_to_one_exclusive_with_numeric_keys() {
        let w = |k: &str, v: f64| BTreeMap::from([(k.to_owned(), v)]);
        assert!(check_weights(&w("2", 0.0)).is_ok());
        assert!(check_weights(&w("2", 0.999)).is_ok());
        for (k, v) in [("2", 1.0), ("2", -0.1), ("2", 1.5), ("x", 0.5), ("", 0.5)] {
            assert!(
                matches!(check_weights(&w(k, v)), Err(LambdaError::Validation(_))),
                "{k}={v}"
            );
        }
    }

    #[test]
    fn pick_version_follows_the_weight() {
        let a = alias("1", &[("2", 0.3)]);
        assert_eq!(pick_version(&a, 0.0), "2");
        assert_eq!(pick_version(&a, 0.2999), "2");
        assert_eq!(pick_version(&a, 0.3), "1");
        assert_eq!(pick_version(&a, 0.9999), "1");
        let plain = alias("$LATEST", &[]);
        assert_eq!(pick_version(&plain, 0.0), "$LATEST");
        let zero = alias("1", &[("2", 0.0)]);
        assert_eq!(pick_version(&zero, 0.0), "1");
    }
}
