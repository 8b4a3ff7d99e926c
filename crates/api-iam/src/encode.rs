//! IAM's output shapes in XML: entities, lists as `<member>` elements, pages with
//! `IsTruncated`/`Marker`, policy documents URL-encoded as AWS returns them.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use stratus_aws::Page;
use stratus_aws::clock::iso8601;
use stratus_iam::{AccessKey, Group, ManagedPolicy, PolicyVersion, Role, Tag, User};
use stratus_protocol::xml::Writer;

/// What AWS leaves unencoded in a returned document (RFC 3986's unreserved characters).
const DOCUMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A policy document as IAM returns it: percent-encoded JSON (clients decode it).
pub(crate) fn document(text: &str) -> String {
    utf8_percent_encode(text, DOCUMENT).to_string()
}

pub(crate) fn date(ms: i64) -> String {
    iso8601(ms)
}

pub(crate) fn tags(w: &mut Writer, tags: &[Tag]) {
    w.open("Tags");
    for t in tags {
        w.open("member")
            .leaf("Key", &t.key)
            .leaf("Value", &t.value)
            .close();
    }
    w.close();
}

/// `<IsTruncated>` and, when there is more, `<Marker>`.
pub(crate) fn truncation<T>(w: &mut Writer, page: &Page<T>) {
    match &page.next {
        Some(m) => {
            w.leaf("IsTruncated", "true").leaf("Marker", m);
        }
        None => {
            w.leaf("IsTruncated", "false");
        }
    }
}

/// `<name><member>...</member>...</name>`, each member written by `f`.
pub(crate) fn list<T>(w: &mut Writer, name: &str, items: &[T], mut f: impl FnMut(&mut Writer, &T)) {
    w.open(name);
    for item in items {
        w.open("member");
        f(w, item);
        w.close();
    }
    w.close();
}

pub(crate) fn user(w: &mut Writer, u: &User) {
    w.leaf("Path", &u.path)
        .leaf("UserName", &u.name)
        .leaf("UserId", &u.id)
        .leaf("Arn", &u.arn)
        .leaf("CreateDate", &date(u.create_ms));
    if !u.tags.is_empty() {
        tags(w, &u.tags);
    }
}

pub(crate) fn group(w: &mut Writer, g: &Group) {
    w.leaf("Path", &g.path)
        .leaf("GroupName", &g.name)
        .leaf("GroupId", &g.id)
        .leaf("Arn", &g.arn)
        .leaf("CreateDate", &date(g.create_ms));
}

pub(crate) fn role(w: &mut Writer, r: &Role) {
    w.leaf("Path", &r.path)
        .leaf("RoleName", &r.name)
        .leaf("RoleId", &r.id)
        .leaf("Arn", &r.arn)
        .leaf("CreateDate", &date(r.create_ms))
        .leaf("AssumeRolePolicyDocument", &document(&r.trust_policy));
    if let Some(d) = &r.description {
        w.leaf("Description", d);
    }
    w.leaf("MaxSessionDuration", &r.max_session_secs.to_string());
    if !r.tags.is_empty() {
        tags(w, &r.tags);
    }
}

pub(crate) fn policy(w: &mut Writer, p: &ManagedPolicy) {
    w.leaf("PolicyName", &p.name)
        .leaf("PolicyId", &p.id)
        .leaf("Arn", &p.arn)
        .leaf("Path", &p.path)
        .leaf("DefaultVersionId", &p.default_version)
        .leaf("AttachmentCount", &p.attachments.len().to_string())
        .leaf("PermissionsBoundaryUsageCount", "0")
        .leaf("IsAttachable", "true");
    if let Some(d) = &p.description {
        w.leaf("Description", d);
    }
    w.leaf("CreateDate", &date(p.create_ms))
        .leaf("UpdateDate", &date(p.update_ms));
    if !p.tags.is_empty() {
        tags(w, &p.tags);
    }
}

pub(crate) fn version(w: &mut Writer, v: &PolicyVersion, is_default: bool, with_document: bool) {
    if with_document {
        w.leaf("Document", &document(&v.document));
    }
    w.leaf("VersionId", &v.id)
        .leaf(
            "IsDefaultVersion",
            if is_default { "true" } else { "false" },
        )
        .leaf("CreateDate", &date(v.create_ms));
}

/// An access key's metadata; its secret only when `with_secret` (`CreateAccessKey`).
pub(crate) fn access_key(w: &mut Writer, k: &AccessKey, with_secret: bool) {
    w.leaf("UserName", &k.user)
        .leaf("AccessKeyId", &k.id)
        .leaf("Status", k.status.as_str());
    if with_secret {
        w.leaf("SecretAccessKey", &k.secret);
    }
    w.leaf("CreateDate", &date(k.create_ms));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_are_percent_encoded() {
        assert_eq!(
            document(r#"{"A": "b-c_d.e~f/*"}"#),
            "%7B%22A%22%3A%20%22b-c_d.e~f%2F%2A%22%7D"
        );
    }
}
