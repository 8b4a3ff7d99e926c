//! Invoke, below the API: the one entry point through which a function is called, whoever
//! calls it (Lambda's `Invoke`, and through [`stratus_aws::FunctionInvoker`] any trigger).
//!
//! [`Functions::invoke`] takes a typed [`FunctionCall`]: it resolves the function, version
//! or alias (weighted routing included; from the store's in-memory cache on the calling
//! thread when it can, else on the blocking pool), checks that the version is `Active`, and
//! then checks (`DryRun`), queues (`Event`, through the [`AsyncQueue`]) or runs it
//! (`RequestResponse`, through the [`Invoker`], which admits it against the concurrency
//! limits). The queue's dispatcher runs its events through the same lower half,
//! [`InvokeRequest::new`].
//!
//! Invariant: no wire here. Errors are a [`CallError`] whose variants the API crate maps to
//! AWS codes, and that [`InvokeFailure`] names for other services.

use bytes::Bytes;
use stratus_aws::{
    BoxFuture, FunctionCall, FunctionInvoker, FunctionResponse, FunctionResult, InvocationType,
    InvokeFailure,
};
use stratus_lambda::{FunctionService, FunctionState, FunctionView, LambdaError};

use crate::invoker::Invoker;
use crate::limits::Throttle;
use crate::queue::{AsyncQueue, MAX_ASYNC_PAYLOAD, QueueError};
use crate::request::{Code, InvokeError, InvokeRequest, InvokeResult};

/// Lambda's cap on a synchronous request payload.
pub const MAX_SYNC_PAYLOAD: usize = 6 * 1024 * 1024;

/// Why a call has no result.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// Resolving the function failed: no such function, version or alias; a malformed
    /// name; the store.
    #[error(transparent)]
    Lambda(#[from] LambdaError),
    /// The version is not `Active`.
    #[error(
        "The operation cannot be performed at this time. The function is currently in the following state: {}",
        .0.as_str()
    )]
    NotActive(FunctionState),
    /// A concurrency limit or the memory budget is in use.
    #[error("Rate Exceeded.")]
    Throttled(Throttle),
    /// The payload is over the limit of its invocation type.
    #[error("Request must be smaller than {limit} bytes for the {operation} operation")]
    TooLarge {
        limit: usize,
        operation: &'static str,
    },
    /// This server cannot create execution environments (no sandboxes on this host).
    #[error(
        "This Stratus server cannot create execution environments on this host (see the server log)."
    )]
    Unavailable,
    /// The platform failed running the function.
    #[error(transparent)]
    Invoke(InvokeError),
    /// The event could not be queued.
    #[error("queueing the event: {0}")]
    Queue(#[from] QueueError),
    /// A task on the blocking pool panicked or was cancelled.
    #[error("a blocking task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

impl From<InvokeError> for CallError {
    fn from(e: InvokeError) -> CallError {
        match e {
            InvokeError::Throttled(t) => CallError::Throttled(t),
            other => CallError::Invoke(other),
        }
    }
}

/// What a call came to.
#[derive(Debug)]
pub enum Invoked {
    /// The function ran (`RequestResponse`).
    Response(InvokeResult),
    /// The event is durable in the queue (`Event`).
    Accepted { request_id: String },
    /// The function could be invoked (`DryRun`).
    Checked,
}

/// Lambda's functions as callers see them: invoke by name. Cheap to clone.
#[derive(Clone)]
pub struct Functions {
    service: FunctionService,
    /// `None` when this host cannot create sandboxes.
    invoker: Option<Invoker>,
    /// Present with the invoker.
    queue: Option<AsyncQueue>,
    /// Judges functions' resource policies for services ([`FunctionInvoker::may_invoke`]);
    /// without it no service may invoke.
    authorizer: Option<std::sync::Arc<dyn stratus_aws::Authorizer>>,
}

impl Functions {
    pub fn new(
        service: FunctionService,
        invoker: Option<Invoker>,
        queue: Option<AsyncQueue>,
    ) -> Functions {
        Functions {
            service,
            invoker,
            queue,
            authorizer: None,
        }
    }

    /// Judges resource policies with `authorizer` (see [`FunctionInvoker::may_invoke`]).
    pub fn with_authorizer(
        mut self,
        authorizer: std::sync::Arc<dyn stratus_aws::Authorizer>,
    ) -> Functions {
        self.authorizer = Some(authorizer);
        self
    }

    pub fn service(&self) -> &FunctionService {
        &self.service
    }

    pub fn invoker(&self) -> Option<&Invoker> {
        self.invoker.as_ref()
    }

    pub fn queue(&self) -> Option<&AsyncQueue> {
        self.queue.as_ref()
    }

    /// Invokes `call.function` as `call.invocation_type` says.
    pub async fn invoke(&self, call: FunctionCall) -> Result<Invoked, CallError> {
        let FunctionCall {
            function,
            qualifier,
            payload,
            invocation_type,
            client_context,
            caller: _,
        } = call;
        if invocation_type == InvocationType::RequestResponse && payload.len() > MAX_SYNC_PAYLOAD {
            return Err(CallError::TooLarge {
                limit: MAX_SYNC_PAYLOAD,
                operation: "InvokeFunction",
            });
        }
        // An alias resolves here, weighted routing included: `view.config.version` is what
        // runs.
        let view = self.resolve(function, qualifier.as_deref()).await?;
        if view.config.state != FunctionState::Active {
            return Err(CallError::NotActive(view.config.state));
        }
        match invocation_type {
            InvocationType::DryRun => Ok(Invoked::Checked),
            InvocationType::Event => {
                let request_id = self.enqueue(view.config.name, qualifier, payload).await?;
                Ok(Invoked::Accepted { request_id })
            }
            InvocationType::RequestResponse => {
                let invoker = self.invoker.as_ref().ok_or(CallError::Unavailable)?;
                let req = InvokeRequest::new(
                    &self.service,
                    view,
                    qualifier.as_deref(),
                    payload,
                    client_context,
                    Code::Of(self.service.clone()),
                );
                Ok(Invoked::Response(invoker.invoke(req).await?))
            }
        }
    }

    /// The version `function` (and `qualifier`) names now. Answered from the store's cache
    /// when it can be (the usual case for a function invoked again), on this thread; else on
    /// a blocking thread.
    async fn resolve(
        &self,
        function: String,
        qualifier: Option<&str>,
    ) -> Result<FunctionView, CallError> {
        let cached = self
            .service
            .from_memory(|s| s.resolve_for_invoke(&function, qualifier));
        match cached {
            Some(result) => Ok(result?),
            None => {
                let (svc, q) = (self.service.clone(), qualifier.map(str::to_owned));
                Ok(tokio::task::spawn_blocking(move || {
                    svc.resolve_for_invoke(&function, q.as_deref())
                })
                .await??)
            }
        }
    }

    /// `Event`: the event is durable in the queue when this returns its request id.
    async fn enqueue(
        &self,
        name: String,
        qualifier: Option<String>,
        payload: Bytes,
    ) -> Result<String, CallError> {
        if payload.len() > MAX_ASYNC_PAYLOAD {
            return Err(CallError::TooLarge {
                limit: MAX_ASYNC_PAYLOAD,
                operation: "InvokeAsync",
            });
        }
        let queue = self.queue.clone().ok_or(CallError::Unavailable)?;
        Ok(tokio::task::spawn_blocking(move || {
            queue.enqueue(&name, qualifier.as_deref(), &payload)
        })
        .await??)
    }
}

impl FunctionInvoker for Functions {
    fn may_invoke(
        &self,
        source: stratus_aws::ServiceSource<'_>,
        function: &str,
        qualifier: Option<&str>,
    ) -> BoxFuture<'static, bool> {
        let (service, authorizer) = (self.service.clone(), self.authorizer.clone());
        let (principal, source_arn, source_account) = (
            source.service.to_owned(),
            source.source_arn.to_owned(),
            source.source_account.to_owned(),
        );
        let (function, qualifier) = (function.to_owned(), qualifier.map(str::to_owned));
        Box::pin(async move {
            let Some(authorizer) = authorizer else {
                return false;
            };
            tokio::task::spawn_blocking(move || {
                let scope = service.scope();
                let Ok(r) =
                    stratus_lambda::FunctionRef::parse(&function, qualifier.as_deref(), scope)
                else {
                    return false;
                };
                let Ok(Some(policy)) = service.resource_policy(&r.name, r.qualifier.as_deref())
                else {
                    return false;
                };
                let resource = match &r.qualifier {
                    Some(q) => scope.qualified_arn(&r.name, q),
                    None => scope.function_arn(&r.name),
                };
                let access = stratus_aws::Access {
                    principal: &principal,
                    action: "lambda:InvokeFunction",
                    resource: &resource,
                    source_ip: None,
                    region: &scope.region,
                };
                authorizer.policy_allows(
                    &policy,
                    &access,
                    &[
                        ("aws:SourceArn", source_arn.as_str()),
                        ("aws:SourceAccount", source_account.as_str()),
                    ],
                )
            })
            .await
            .unwrap_or(false)
        })
    }

    fn invoke(
        &self,
        call: FunctionCall,
    ) -> BoxFuture<'static, Result<FunctionResult, InvokeFailure>> {
        let this = self.clone();
        Box::pin(async move {
            match Functions::invoke(&this, call).await {
                Ok(Invoked::Response(r)) => Ok(FunctionResult::Response(FunctionResponse {
                    request_id: r.request_id,
                    payload: r.payload,
                    function_error: r.function_error,
                    executed_version: r.executed_version,
                    log_tail: r.log_tail,
                })),
                Ok(Invoked::Accepted { request_id }) => Ok(FunctionResult::Accepted { request_id }),
                Ok(Invoked::Checked) => Ok(FunctionResult::Checked),
                Err(e) => Err(failure(e)),
            }
        })
    }
}

/// What other services see of a [`CallError`].
fn failure(e: CallError) -> InvokeFailure {
    let message = e.to_string();
    match e {
        CallError::Lambda(l) => match l {
            LambdaError::NotFound(_) => InvokeFailure::NotFound(message),
            LambdaError::Validation(_)
            | LambdaError::InvalidParameter(_)
            | LambdaError::Unsupported(_) => InvokeFailure::Invalid(message),
            LambdaError::Conflict(_) => InvokeFailure::Conflict(message),
            LambdaError::TooLarge(_) => InvokeFailure::TooLarge(message),
            _ => internal(message),
        },
        CallError::NotActive(_) => InvokeFailure::Conflict(message),
        CallError::Throttled(t) => InvokeFailure::Throttled { reason: t.reason() },
        CallError::TooLarge { .. } => InvokeFailure::TooLarge(message),
        CallError::Unavailable => InvokeFailure::Unavailable(message),
        CallError::Invoke(_) | CallError::Queue(_) | CallError::Join(_) => internal(message),
    }
}

fn internal(message: String) -> InvokeFailure {
    tracing::error!(error = %message, "invoking a function");
    InvokeFailure::Internal(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn other_services_see_each_error_as_its_aws_kind() {
        let table = [
            (
                CallError::Lambda(LambdaError::NotFound("Function not found: f".into())),
                InvokeFailure::NotFound("Function not found: f".into()),
            ),
            (
                CallError::NotActive(FunctionState::Pending),
                InvokeFailure::Conflict("The operation cannot be performed at this time. The function is currently in the following state: Pending".into()),
            ),
            (
                CallError::Throttled(Throttle::ReservedFunctionConcurrentInvocationLimitExceeded),
                InvokeFailure::Throttled {
                    reason: "ReservedFunctionConcurrentInvocationLimitExceeded",
                },
            ),
            (
                CallError::TooLarge {
                    limit: MAX_ASYNC_PAYLOAD,
                    operation: "InvokeAsync",
                },
                InvokeFailure::TooLarge(
                    "Request must be smaller than 1048576 bytes for the InvokeAsync operation"
                        .into(),
                ),
            ),
            (
                CallError::Unavailable,
                InvokeFailure::Unavailable("This Stratus server cannot create execution environments on this host (see the server log).".into()),
            ),
        ];
        for (error, want) in table {
            assert_eq!(failure(error), want);
        }
    }

    #[test]
    fn a_throttle_from_the_invoker_stays_a_throttle() {
        let e = CallError::from(InvokeError::Throttled(
            Throttle::ConcurrentInvocationLimitExceeded,
        ));
        assert!(matches!(
            e,
            CallError::Throttled(Throttle::ConcurrentInvocationLimitExceeded)
        ));
    }
}
