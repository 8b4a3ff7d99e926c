//! Errors as each protocol writes them.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::Protocol;
use crate::xml::escape;

/// Whose fault an error is: the `Type` of rest-json bodies and query envelopes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The caller's (`User`, `Sender`).
    Client,
    /// Ours (`Service`, `Receiver`).
    Server,
}

/// An AWS error, ready to be written in any protocol's envelope.
#[derive(Debug, Clone)]
pub struct AwsError {
    pub status: StatusCode,
    /// The modelled error's name: `ResourceNotFoundException`.
    pub code: &'static str,
    pub message: String,
    /// How the model spells the message member: Lambda's `ResourceNotFoundException` has
    /// `Message`, most shapes `message`. Clients read the member by that name.
    pub message_member: &'static str,
    /// Other members of the error shape (`Reason` on Lambda's throttles).
    pub extra: Vec<(&'static str, String)>,
}

impl AwsError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> AwsError {
        AwsError {
            status,
            code,
            message: message.into(),
            message_member: "message",
            extra: Vec::new(),
        }
    }

    /// A 500 whose detail goes to the server's log, not to the client.
    pub fn internal(detail: impl std::fmt::Display) -> AwsError {
        tracing::error!(error = %detail, "internal error");
        AwsError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "ServiceException",
            "The service encountered an internal error.",
        )
    }

    /// A refusal by the authorizer, in the code `protocol`'s services use: 403
    /// `AccessDeniedException` (json, rest-json), `AccessDenied` (query, rest-xml).
    pub fn denied(protocol: Protocol, denied: stratus_aws::Denied) -> AwsError {
        let code = match protocol {
            Protocol::RestJson | Protocol::Json10 | Protocol::Json11 => "AccessDeniedException",
            Protocol::Query | Protocol::RestXml => "AccessDenied",
        };
        let e = AwsError::new(StatusCode::FORBIDDEN, code, denied.message);
        // As AWS writes it for Lambda (`Message`); json services write `message`.
        if protocol == Protocol::RestJson {
            e.with_member("Message")
        } else {
            e
        }
    }

    pub fn with_member(mut self, member: &'static str) -> AwsError {
        self.message_member = member;
        self
    }

    pub fn with(mut self, member: &'static str, value: impl Into<String>) -> AwsError {
        self.extra.push((member, value.into()));
        self
    }

    pub fn fault(&self) -> Fault {
        if self.status.is_server_error() {
            Fault::Server
        } else {
            Fault::Client
        }
    }

    /// The response `protocol` writes for this error.
    pub fn render(&self, protocol: Protocol, request_id: &str) -> Response {
        let (content_type, body) = match protocol {
            Protocol::RestJson | Protocol::Json10 | Protocol::Json11 => {
                let mut body = serde_json::Map::new();
                if protocol == Protocol::RestJson {
                    let fault = match self.fault() {
                        Fault::Client => "User",
                        Fault::Server => "Service",
                    };
                    body.insert("Type".into(), fault.into());
                } else {
                    body.insert("__type".into(), self.code.into());
                }
                body.insert(self.message_member.into(), self.message.clone().into());
                for (k, v) in &self.extra {
                    body.insert((*k).into(), v.clone().into());
                }
                (
                    protocol.json_content_type(),
                    serde_json::Value::Object(body).to_string(),
                )
            }
            Protocol::RestXml => (
                "application/xml",
                format!(
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{}</Code><Message>{}</Message>{}<RequestId>{}</RequestId></Error>",
                    self.code,
                    escape(&self.message),
                    self.extra_xml(),
                    escape(request_id)
                ),
            ),
            Protocol::Query => {
                let fault = match self.fault() {
                    Fault::Client => "Sender",
                    Fault::Server => "Receiver",
                };
                (
                    "text/xml",
                    format!(
                        "<ErrorResponse><Error><Type>{fault}</Type><Code>{}</Code><Message>{}</Message>{}</Error><RequestId>{}</RequestId></ErrorResponse>",
                        self.code,
                        escape(&self.message),
                        self.extra_xml(),
                        escape(request_id)
                    ),
                )
            }
        };
        let mut resp = (self.status, [(header::CONTENT_TYPE, content_type)], body).into_response();
        resp.headers_mut()
            .insert("x-amzn-ErrorType", HeaderValue::from_static(self.code));
        if !request_id.is_empty()
            && let Ok(v) = HeaderValue::from_str(request_id)
        {
            resp.headers_mut().insert("x-amzn-RequestId", v);
        }
        resp
    }

    fn extra_xml(&self) -> String {
        self.extra
            .iter()
            .map(|(k, v)| format!("<{k}>{}</{k}>", escape(v)))
            .collect()
    }
}

impl std::fmt::Display for AwsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    async fn body(resp: Response) -> String {
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn each_protocol_writes_its_envelope() {
        let e = AwsError::new(
            StatusCode::NOT_FOUND,
            "ResourceNotFoundException",
            "no <such> thing",
        )
        .with("Reason", "x");
        let rest = e
            .clone()
            .with_member("Message")
            .render(Protocol::RestJson, "rid");
        assert_eq!(
            rest.headers()["x-amzn-ErrorType"],
            "ResourceNotFoundException"
        );
        let v: serde_json::Value = serde_json::from_str(&body(rest).await).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"Type": "User", "Message": "no <such> thing", "Reason": "x"})
        );

        let json = e.render(Protocol::Json11, "rid");
        assert_eq!(json.headers()["content-type"], "application/x-amz-json-1.1");
        let v: serde_json::Value = serde_json::from_str(&body(json).await).unwrap();
        assert_eq!(v["__type"], "ResourceNotFoundException");
        assert_eq!(v["message"], "no <such> thing");

        let query = body(e.render(Protocol::Query, "rid")).await;
        assert!(query.contains("<Type>Sender</Type><Code>ResourceNotFoundException</Code><Message>no &lt;such&gt; thing</Message>"), "{query}");
        assert!(
            query.ends_with("<RequestId>rid</RequestId></ErrorResponse>"),
            "{query}"
        );

        let xml = body(e.render(Protocol::RestXml, "rid")).await;
        assert!(
            xml.contains("<Error><Code>ResourceNotFoundException</Code>"),
            "{xml}"
        );

        let internal = AwsError::internal("disk on fire");
        assert_eq!(internal.fault(), Fault::Server);
        assert!(!internal.message.contains("disk"));
    }
}
