//! Provisioned concurrency made real: a reconciler that keeps, for every configuration,
//! the requested number of initialised environments of the version it names (an alias is
//! followed to its version). How many are allocated is read from the invoker
//! ([`Invoker::provisioned_count`]), which counts only environments that finished init.

use std::collections::HashSet;
use std::time::Duration;

use stratus_lambda::FunctionService;

use crate::environment::EnvKey;
use crate::invoker::Invoker;

const PERIOD: Duration = Duration::from_millis(500);

#[derive(Clone)]
pub struct Provisioner {
    invoker: Invoker,
}

impl Provisioner {
    pub fn start(functions: FunctionService, invoker: Invoker) -> Provisioner {
        let p = Provisioner {
            invoker: invoker.clone(),
        };
        tokio::spawn(async move {
            loop {
                if let Err(e) = reconcile(&functions, &invoker).await {
                    tracing::warn!(error = %e, "provisioned concurrency");
                }
                tokio::time::sleep(PERIOD).await;
            }
        });
        p
    }

    /// Initialised environments allocated now for the function version `config`.
    pub fn allocated(&self, config: &stratus_lambda::FunctionConfig) -> u32 {
        self.invoker.provisioned_count(&EnvKey::of(config))
    }
}

async fn reconcile(functions: &FunctionService, invoker: &Invoker) -> Result<(), String> {
    let svc = functions.clone();
    let configs = tokio::task::spawn_blocking(move || {
        let configs = svc.list_provisioned(None)?;
        configs
            .into_iter()
            .map(|c| {
                let view = svc.get(&c.function_name, Some(&c.qualifier))?;
                let code = svc.ensure_code(&view.config)?;
                Ok((c, view.config, code))
            })
            .collect::<Result<Vec<_>, stratus_lambda::LambdaError>>()
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| e.to_string())?;
    let mut wanted = HashSet::new();
    for (c, config, code) in configs {
        invoker
            .ensure_provisioned(&config, &code, c.requested)
            .await;
        wanted.insert(EnvKey::of(&config));
    }
    invoker.retain_provisioned(&wanted);
    Ok(())
}
