//! Tags: TagResource, UntagResource, ListTags. Tags belong to the function as a whole and are
//! kept in its record.

use std::collections::BTreeMap;

use stratus_store::{Expect, Op};

use crate::model::FunctionRecord;
use crate::names::FunctionRef;
use crate::records::{FUNCTIONS, blobs_of, encode};
use crate::{FunctionService, LambdaError, validate};

impl FunctionService {
    fn tag_target(&self, resource: &str) -> Result<(FunctionRecord, u64), LambdaError> {
        if !resource.starts_with("arn:") {
            return Err(LambdaError::Validation(format!(
                "1 validation error detected: Value '{resource}' at 'resource' failed to satisfy constraint: \
                 Member must satisfy regular expression pattern: arn:(aws[a-zA-Z-]*):lambda:[a-z]{{2}}((-gov)|(-iso([a-z]?)))?-[a-z]+-\\d{{1}}:\\d{{12}}:(function:[a-zA-Z0-9-_]+(:(\\$LATEST|[a-zA-Z0-9-_]+))?)"
            )));
        }
        let r = FunctionRef::parse(resource, None, self.scope())?;
        if r.qualifier.is_some() {
            return Err(LambdaError::InvalidParameter(
                "Tags are not supported on function versions or aliases: tag the unqualified function ARN."
                    .into(),
            ));
        }
        self.load(&r.name)?.ok_or_else(|| self.not_found(&r))
    }

    pub fn tag(&self, resource: &str, tags: BTreeMap<String, String>) -> Result<(), LambdaError> {
        let _w = self.write_guard()?;
        let (mut rec, v) = self.tag_target(resource)?;
        rec.tags.extend(tags);
        validate::tags(&rec.tags)?;
        self.commit_tags(&rec, v)
    }

    pub fn untag(&self, resource: &str, keys: &[String]) -> Result<(), LambdaError> {
        let _w = self.write_guard()?;
        let (mut rec, v) = self.tag_target(resource)?;
        for k in keys {
            rec.tags.remove(k);
        }
        self.commit_tags(&rec, v)
    }

    fn commit_tags(&self, rec: &FunctionRecord, doc_version: u64) -> Result<(), LambdaError> {
        self.inner.store.meta.commit(&[Op::put_with_blobs(
            FUNCTIONS,
            &rec.latest.name,
            encode(rec)?,
            blobs_of(&rec.latest)?,
            Expect::Version(doc_version),
        )])?;
        Ok(())
    }

    pub fn list_tags(&self, resource: &str) -> Result<BTreeMap<String, String>, LambdaError> {
        Ok(self.tag_target(resource)?.0.tags)
    }
}
