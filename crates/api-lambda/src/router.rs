//! Turns a request line into an [`Endpoint`]: one variant per AWS operation, so dispatch is a
//! single `match` and every operation's parameters are typed before any handler runs.

use axum::http::Method;
use percent_encoding::percent_decode_str;

use crate::error::ApiError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    CreateFunction,
    ListFunctions {
        marker: Option<String>,
        max_items: Option<String>,
    },
    GetFunction {
        name: String,
        qualifier: Option<String>,
    },
    GetFunctionConfiguration {
        name: String,
        qualifier: Option<String>,
    },
    DeleteFunction {
        name: String,
        qualifier: Option<String>,
    },
    UpdateFunctionCode {
        name: String,
    },
    UpdateFunctionConfiguration {
        name: String,
    },
    Invoke {
        name: String,
        qualifier: Option<String>,
    },
    TagResource {
        resource: String,
    },
    UntagResource {
        resource: String,
        keys: Vec<String>,
    },
    ListTags {
        resource: String,
    },
    GetAccountSettings,
    PutFunctionConcurrency {
        name: String,
    },
    /// Put/Update/Get/Delete FunctionEventInvokeConfig, by method.
    EventInvokeConfig {
        method: String,
        name: String,
        qualifier: Option<String>,
    },
    ListFunctionEventInvokeConfigs {
        name: String,
    },
    /// Put/Get/Delete/List ProvisionedConcurrencyConfig(s), by method (and `List=ALL`).
    ProvisionedConcurrency {
        method: String,
        name: String,
        qualifier: Option<String>,
        list: bool,
    },
    GetFunctionConcurrency {
        name: String,
    },
    DeleteFunctionConcurrency {
        name: String,
    },
    PublishVersion {
        name: String,
    },
    ListVersionsByFunction {
        name: String,
        marker: Option<String>,
        max_items: Option<String>,
    },
    CreateAlias {
        name: String,
    },
    ListAliases {
        name: String,
        function_version: Option<String>,
        marker: Option<String>,
        max_items: Option<String>,
    },
    GetAlias {
        name: String,
        alias: String,
    },
    UpdateAlias {
        name: String,
        alias: String,
    },
    DeleteAlias {
        name: String,
        alias: String,
    },
    AddPermission {
        name: String,
        qualifier: Option<String>,
    },
    RemovePermission {
        name: String,
        statement_id: String,
        qualifier: Option<String>,
        revision_id: Option<String>,
    },
    GetPolicy {
        name: String,
        qualifier: Option<String>,
    },
    PublishLayerVersion {
        layer: String,
    },
    ListLayerVersions {
        layer: String,
        filter: LayerFilter,
    },
    ListLayers {
        filter: LayerFilter,
    },
    GetLayerVersion {
        layer: String,
        version: String,
    },
    GetLayerVersionByArn {
        arn: String,
    },
    DeleteLayerVersion {
        layer: String,
        version: String,
    },
    AddLayerVersionPermission {
        layer: String,
        version: String,
        revision_id: Option<String>,
    },
    RemoveLayerVersionPermission {
        layer: String,
        version: String,
        statement_id: String,
        revision_id: Option<String>,
    },
    GetLayerVersionPolicy {
        layer: String,
        version: String,
    },
    /// Stratus's own: the zip behind GetFunction's `Code.Location` (a presigned URL).
    DownloadCode {
        name: String,
        version: String,
    },
}

/// ListLayers' and ListLayerVersions' query: filters and page.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LayerFilter {
    pub runtime: Option<String>,
    pub architecture: Option<String>,
    pub marker: Option<String>,
    pub max_items: Option<String>,
}

impl Endpoint {
    /// The AWS operation's name, as metrics label requests.
    pub fn name(&self) -> &'static str {
        match self {
            Endpoint::CreateFunction => "CreateFunction",
            Endpoint::ListFunctions { .. } => "ListFunctions",
            Endpoint::GetFunction { .. } => "GetFunction",
            Endpoint::GetFunctionConfiguration { .. } => "GetFunctionConfiguration",
            Endpoint::DeleteFunction { .. } => "DeleteFunction",
            Endpoint::UpdateFunctionCode { .. } => "UpdateFunctionCode",
            Endpoint::UpdateFunctionConfiguration { .. } => "UpdateFunctionConfiguration",
            Endpoint::Invoke { .. } => "Invoke",
            Endpoint::TagResource { .. } => "TagResource",
            Endpoint::UntagResource { .. } => "UntagResource",
            Endpoint::ListTags { .. } => "ListTags",
            Endpoint::GetAccountSettings => "GetAccountSettings",
            Endpoint::PutFunctionConcurrency { .. } => "PutFunctionConcurrency",
            Endpoint::EventInvokeConfig { method, .. } => match method.as_str() {
                "PUT" => "PutFunctionEventInvokeConfig",
                "POST" => "UpdateFunctionEventInvokeConfig",
                "DELETE" => "DeleteFunctionEventInvokeConfig",
                _ => "GetFunctionEventInvokeConfig",
            },
            Endpoint::ListFunctionEventInvokeConfigs { .. } => "ListFunctionEventInvokeConfigs",
            Endpoint::ProvisionedConcurrency { method, list, .. } => match method.as_str() {
                "PUT" => "PutProvisionedConcurrencyConfig",
                "DELETE" => "DeleteProvisionedConcurrencyConfig",
                _ if *list => "ListProvisionedConcurrencyConfigs",
                _ => "GetProvisionedConcurrencyConfig",
            },
            Endpoint::GetFunctionConcurrency { .. } => "GetFunctionConcurrency",
            Endpoint::DeleteFunctionConcurrency { .. } => "DeleteFunctionConcurrency",
            Endpoint::PublishVersion { .. } => "PublishVersion",
            Endpoint::ListVersionsByFunction { .. } => "ListVersionsByFunction",
            Endpoint::CreateAlias { .. } => "CreateAlias",
            Endpoint::ListAliases { .. } => "ListAliases",
            Endpoint::GetAlias { .. } => "GetAlias",
            Endpoint::UpdateAlias { .. } => "UpdateAlias",
            Endpoint::DeleteAlias { .. } => "DeleteAlias",
            Endpoint::AddPermission { .. } => "AddPermission",
            Endpoint::RemovePermission { .. } => "RemovePermission",
            Endpoint::GetPolicy { .. } => "GetPolicy",
            Endpoint::PublishLayerVersion { .. } => "PublishLayerVersion",
            Endpoint::ListLayerVersions { .. } => "ListLayerVersions",
            Endpoint::ListLayers { .. } => "ListLayers",
            Endpoint::GetLayerVersion { .. } => "GetLayerVersion",
            Endpoint::GetLayerVersionByArn { .. } => "GetLayerVersionByArn",
            Endpoint::DeleteLayerVersion { .. } => "DeleteLayerVersion",
            Endpoint::AddLayerVersionPermission { .. } => "AddLayerVersionPermission",
            Endpoint::RemoveLayerVersionPermission { .. } => "RemoveLayerVersionPermission",
            Endpoint::GetLayerVersionPolicy { .. } => "GetLayerVersionPolicy",
            Endpoint::DownloadCode { .. } => "DownloadCode",
        }
    }
}

/// Query parameters, decoded, in order; keys may repeat.
#[derive(Debug, Default, Clone)]
pub struct Query(pub Vec<(String, String)>);

impl Query {
    pub fn parse(raw: &str) -> Query {
        Query(stratus_protocol::query::pairs(raw).collect())
    }

    pub fn get(&self, key: &str) -> Option<String> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    }

    pub fn all(&self, key: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .collect()
    }
}

/// Splits a raw path into percent-decoded segments (empty segments from a trailing slash dropped).
fn segments(raw_path: &str) -> Vec<String> {
    raw_path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| percent_decode_str(s).decode_utf8_lossy().into_owned())
        .collect()
}

pub fn parse(method: &Method, raw_path: &str, query: &Query) -> Result<Endpoint, ApiError> {
    let segs = segments(raw_path);
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    let qualifier = || query.get("Qualifier").filter(|q| !q.is_empty());
    let m = method.as_str();
    let layer_filter = || LayerFilter {
        runtime: query.get("CompatibleRuntime").filter(|r| !r.is_empty()),
        architecture: query
            .get("CompatibleArchitecture")
            .filter(|a| !a.is_empty()),
        marker: query.get("Marker").filter(|m| !m.is_empty()),
        max_items: query.get("MaxItems"),
    };
    let ep = match (m, segs.as_slice()) {
        ("POST", ["2015-03-31", "functions"]) => Endpoint::CreateFunction,
        ("GET", ["2015-03-31", "functions"]) => Endpoint::ListFunctions {
            marker: query.get("Marker"),
            max_items: query.get("MaxItems"),
        },
        ("GET", ["2015-03-31", "functions", name]) => Endpoint::GetFunction {
            name: (*name).to_owned(),
            qualifier: qualifier(),
        },
        ("DELETE", ["2015-03-31", "functions", name]) => Endpoint::DeleteFunction {
            name: (*name).to_owned(),
            qualifier: qualifier(),
        },
        ("GET", ["2015-03-31", "functions", name, "configuration"]) => {
            Endpoint::GetFunctionConfiguration {
                name: (*name).to_owned(),
                qualifier: qualifier(),
            }
        }
        ("PUT", ["2015-03-31", "functions", name, "configuration"]) => {
            Endpoint::UpdateFunctionConfiguration {
                name: (*name).to_owned(),
            }
        }
        ("PUT", ["2015-03-31", "functions", name, "code"]) => Endpoint::UpdateFunctionCode {
            name: (*name).to_owned(),
        },
        ("POST", ["2015-03-31", "functions", name, "invocations"]) => Endpoint::Invoke {
            name: (*name).to_owned(),
            qualifier: qualifier(),
        },
        ("POST", ["2017-03-31", "tags", resource]) => Endpoint::TagResource {
            resource: (*resource).to_owned(),
        },
        ("DELETE", ["2017-03-31", "tags", resource]) => Endpoint::UntagResource {
            resource: (*resource).to_owned(),
            keys: query.all("tagKeys"),
        },
        ("GET", ["2017-03-31", "tags", resource]) => Endpoint::ListTags {
            resource: (*resource).to_owned(),
        },
        ("GET", ["2016-08-19", "account-settings"]) => Endpoint::GetAccountSettings,
        ("PUT", ["2017-10-31", "functions", name, "concurrency"]) => {
            Endpoint::PutFunctionConcurrency {
                name: (*name).to_owned(),
            }
        }
        (
            "PUT" | "POST" | "GET" | "DELETE",
            ["2019-09-25", "functions", name, "event-invoke-config"],
        ) => Endpoint::EventInvokeConfig {
            method: m.to_owned(),
            name: (*name).to_owned(),
            qualifier: qualifier(),
        },
        (
            "GET",
            [
                "2019-09-25",
                "functions",
                name,
                "event-invoke-config",
                "list",
            ],
        ) => Endpoint::ListFunctionEventInvokeConfigs {
            name: (*name).to_owned(),
        },
        (
            "PUT" | "GET" | "DELETE",
            ["2019-09-30", "functions", name, "provisioned-concurrency"],
        ) => Endpoint::ProvisionedConcurrency {
            method: m.to_owned(),
            name: (*name).to_owned(),
            qualifier: qualifier(),
            list: query.get("List").is_some(),
        },
        ("GET", ["2019-09-30", "functions", name, "concurrency"]) => {
            Endpoint::GetFunctionConcurrency {
                name: (*name).to_owned(),
            }
        }
        ("DELETE", ["2017-10-31", "functions", name, "concurrency"]) => {
            Endpoint::DeleteFunctionConcurrency {
                name: (*name).to_owned(),
            }
        }
        ("POST", ["2015-03-31", "functions", name, "versions"]) => Endpoint::PublishVersion {
            name: (*name).to_owned(),
        },
        ("GET", ["2015-03-31", "functions", name, "versions"]) => {
            Endpoint::ListVersionsByFunction {
                name: (*name).to_owned(),
                marker: query.get("Marker"),
                max_items: query.get("MaxItems"),
            }
        }
        ("POST", ["2015-03-31", "functions", name, "aliases"]) => Endpoint::CreateAlias {
            name: (*name).to_owned(),
        },
        ("GET", ["2015-03-31", "functions", name, "aliases"]) => Endpoint::ListAliases {
            name: (*name).to_owned(),
            function_version: query.get("FunctionVersion"),
            marker: query.get("Marker"),
            max_items: query.get("MaxItems"),
        },
        (m @ ("GET" | "PUT" | "DELETE"), ["2015-03-31", "functions", name, "aliases", alias]) => {
            let (name, alias) = ((*name).to_owned(), (*alias).to_owned());
            match m {
                "GET" => Endpoint::GetAlias { name, alias },
                "PUT" => Endpoint::UpdateAlias { name, alias },
                _ => Endpoint::DeleteAlias { name, alias },
            }
        }
        ("POST", ["2015-03-31", "functions", name, "policy"]) => Endpoint::AddPermission {
            name: (*name).to_owned(),
            qualifier: qualifier(),
        },
        ("GET", ["2015-03-31", "functions", name, "policy"]) => Endpoint::GetPolicy {
            name: (*name).to_owned(),
            qualifier: qualifier(),
        },
        ("DELETE", ["2015-03-31", "functions", name, "policy", sid]) => {
            Endpoint::RemovePermission {
                name: (*name).to_owned(),
                statement_id: (*sid).to_owned(),
                qualifier: qualifier(),
                revision_id: query.get("RevisionId").filter(|r| !r.is_empty()),
            }
        }
        ("POST", ["2018-10-31", "layers", layer, "versions"]) => Endpoint::PublishLayerVersion {
            layer: (*layer).to_owned(),
        },
        ("GET", ["2018-10-31", "layers", layer, "versions"]) => Endpoint::ListLayerVersions {
            layer: (*layer).to_owned(),
            filter: layer_filter(),
        },
        ("GET", ["2018-10-31", "layers"]) => match query.get("find").as_deref() {
            Some("LayerVersion") => Endpoint::GetLayerVersionByArn {
                arn: query.get("Arn").unwrap_or_default(),
            },
            _ => Endpoint::ListLayers {
                filter: layer_filter(),
            },
        },
        ("GET", ["2018-10-31", "layers", layer, "versions", version]) => {
            Endpoint::GetLayerVersion {
                layer: (*layer).to_owned(),
                version: (*version).to_owned(),
            }
        }
        ("DELETE", ["2018-10-31", "layers", layer, "versions", version]) => {
            Endpoint::DeleteLayerVersion {
                layer: (*layer).to_owned(),
                version: (*version).to_owned(),
            }
        }
        ("POST", ["2018-10-31", "layers", layer, "versions", version, "policy"]) => {
            Endpoint::AddLayerVersionPermission {
                layer: (*layer).to_owned(),
                version: (*version).to_owned(),
                revision_id: query.get("RevisionId").filter(|r| !r.is_empty()),
            }
        }
        ("GET", ["2018-10-31", "layers", layer, "versions", version, "policy"]) => {
            Endpoint::GetLayerVersionPolicy {
                layer: (*layer).to_owned(),
                version: (*version).to_owned(),
            }
        }
        (
            "DELETE",
            [
                "2018-10-31",
                "layers",
                layer,
                "versions",
                version,
                "policy",
                sid,
            ],
        ) => Endpoint::RemoveLayerVersionPermission {
            layer: (*layer).to_owned(),
            version: (*version).to_owned(),
            statement_id: (*sid).to_owned(),
            revision_id: query.get("RevisionId").filter(|r| !r.is_empty()),
        },
        ("GET", ["_stratus", "code", name, version]) => Endpoint::DownloadCode {
            name: (*name).to_owned(),
            version: (*version).to_owned(),
        },
        _ => return Err(ApiError::unknown_operation()),
    };
    Ok(ep)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn p(method: Method, path: &str, query: &str) -> Result<Endpoint, ApiError> {
        parse(&method, path, &Query::parse(query))
    }

    #[test]
    fn routes_lambda_operations() {
        assert_eq!(
            p(Method::POST, "/2015-03-31/functions", "").unwrap(),
            Endpoint::CreateFunction
        );
        assert_eq!(
            p(
                Method::GET,
                "/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A000000000000%3Afunction%3Af/configuration",
                "Qualifier=%24LATEST"
            )
            .unwrap(),
            Endpoint::GetFunctionConfiguration {
                name: "arn:aws:lambda:us-east-1:000000000000:function:f".into(),
                qualifier: Some("$LATEST".into())
            }
        );
        assert_eq!(
            p(
                Method::DELETE,
                "/2017-03-31/tags/arn",
                "tagKeys=a&tagKeys=b%20c"
            )
            .unwrap(),
            Endpoint::UntagResource {
                resource: "arn".into(),
                keys: vec!["a".into(), "b c".into()]
            }
        );
        assert_eq!(
            p(Method::GET, "/2016-08-19/account-settings/", "").unwrap(),
            Endpoint::GetAccountSettings
        );
        assert_eq!(
            p(Method::GET, "/2015-03-31/functions/", "MaxItems=2&Marker=m").unwrap(),
            Endpoint::ListFunctions {
                marker: Some("m".into()),
                max_items: Some("2".into())
            }
        );
    }

    #[test]
    fn routes_versions_and_aliases() {
        let f = |s: &str| s.to_owned();
        assert_eq!(
            p(Method::POST, "/2015-03-31/functions/f/versions", "").unwrap(),
            Endpoint::PublishVersion { name: f("f") }
        );
        assert_eq!(
            p(
                Method::GET,
                "/2015-03-31/functions/f/versions",
                "Marker=1&MaxItems=2"
            )
            .unwrap(),
            Endpoint::ListVersionsByFunction {
                name: f("f"),
                marker: Some(f("1")),
                max_items: Some(f("2"))
            }
        );
        assert_eq!(
            p(Method::POST, "/2015-03-31/functions/f/aliases", "").unwrap(),
            Endpoint::CreateAlias { name: f("f") }
        );
        assert_eq!(
            p(
                Method::GET,
                "/2015-03-31/functions/f/aliases",
                "FunctionVersion=%24LATEST"
            )
            .unwrap(),
            Endpoint::ListAliases {
                name: f("f"),
                function_version: Some(f("$LATEST")),
                marker: None,
                max_items: None
            }
        );
        for (m, want) in [
            (
                Method::GET,
                Endpoint::GetAlias {
                    name: f("f"),
                    alias: f("live"),
                },
            ),
            (
                Method::PUT,
                Endpoint::UpdateAlias {
                    name: f("f"),
                    alias: f("live"),
                },
            ),
            (
                Method::DELETE,
                Endpoint::DeleteAlias {
                    name: f("f"),
                    alias: f("live"),
                },
            ),
        ] {
            assert_eq!(
                p(m, "/2015-03-31/functions/f/aliases/live", "").unwrap(),
                want
            );
        }
        assert!(p(Method::POST, "/2015-03-31/functions/f/aliases/live", "").is_err());
    }

    #[test]
    fn routes_resource_policy_operations() {
        let f = |s: &str| s.to_owned();
        assert_eq!(
            p(
                Method::POST,
                "/2015-03-31/functions/f/policy",
                "Qualifier=live"
            )
            .unwrap(),
            Endpoint::AddPermission {
                name: f("f"),
                qualifier: Some(f("live"))
            }
        );
        assert_eq!(
            p(Method::GET, "/2015-03-31/functions/f/policy", "").unwrap(),
            Endpoint::GetPolicy {
                name: f("f"),
                qualifier: None
            }
        );
        assert_eq!(
            p(
                Method::DELETE,
                "/2015-03-31/functions/f/policy/s3-invoke.1",
                "Qualifier=3&RevisionId=r-1"
            )
            .unwrap(),
            Endpoint::RemovePermission {
                name: f("f"),
                statement_id: f("s3-invoke.1"),
                qualifier: Some(f("3")),
                revision_id: Some(f("r-1"))
            }
        );
        assert!(p(Method::PUT, "/2015-03-31/functions/f/policy", "").is_err());
        assert!(p(Method::DELETE, "/2015-03-31/functions/f/policy", "").is_err());
    }

    #[test]
    fn unknown_routes_are_refused() {
        for (m, path) in [
            (Method::PATCH, "/2015-03-31/functions"),
            (Method::GET, "/"),
            (Method::GET, "/2015-03-31/functions/f/nope"),
        ] {
            let e = p(m, path, "").unwrap_err();
            assert_eq!(e.code, "UnknownOperationException");
        }
    }

    proptest::proptest! {
        #[test]
        fn parsing_never_panics(path in ".*", query in ".*", method in "[A-Z]{1,8}") {
            let method = Method::from_bytes(method.as_bytes()).unwrap();
            let _ = parse(&method, &path, &Query::parse(&query));
        }
    }
}
