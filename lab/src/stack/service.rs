//! A `service` architecture brought up: its setup SQL applied, its topics
//! created, and its processes started from their commands with the stack's
//! addresses (through the fault proxies) filled into their templates.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use faultline_stack::broker::TopicSettings;
use faultline_stack::program::find_program;
use faultline_stack::{Broker, Launch, Program, Readiness, StackError};

use faultline_services::metrics::names;

use crate::collect::ScrapeTarget;
use crate::experiment::service::{Ready, vars};
use crate::plan::{ProcessPlan, ServicePlan};
use crate::template::Template;

/// A running `service` architecture.
#[derive(Debug)]
pub struct ServiceParts {
    pub name: String,
    /// Its processes, in the scenario's order, by name.
    pub processes: Vec<(String, Program)>,
    /// The one the load is sent to.
    pub target: usize,
    /// Its topics, as created.
    pub topics: Vec<(String, TopicSettings)>,
    pub plan: ServicePlan,
}

/// What a process's templates are filled from, but its port.
pub struct Context<'a> {
    /// The database through the fault proxy.
    pub database_url: &'a str,
    pub proxy: SocketAddr,
    /// The database straight, for the setup SQL.
    pub direct_url: &'a str,
    pub broker: Option<&'a Broker>,
    pub topics: TopicSettings,
    pub run: &'a str,
}

impl Context<'_> {
    /// Every variable a process may name, for the process on `port`.
    fn values(&self, port: u16) -> Result<BTreeMap<&'static str, String>, StackError> {
        let (plain, _, _) = faultline_services::tls::split_tls_parameters(self.database_url);
        let config: tokio_postgres::Config = plain.parse().map_err(|error| StackError::BadUrl {
            url: crate::secrets::redact(
                self.database_url,
                &crate::secrets::passwords_in(self.database_url),
            ),
            detail: format!("{error}"),
        })?;
        let mut values = BTreeMap::from([
            (vars::DB_HOST, self.proxy.ip().to_string()),
            (vars::DB_PORT, self.proxy.port().to_string()),
            (
                vars::DB_USER,
                config.get_user().unwrap_or_default().to_string(),
            ),
            (
                vars::DB_PASSWORD,
                config
                    .get_password()
                    .map(|p| String::from_utf8_lossy(p).into_owned())
                    .unwrap_or_default(),
            ),
            (
                vars::DB_NAME,
                config.get_dbname().unwrap_or("postgres").to_string(),
            ),
            (vars::DB_URL, self.database_url.to_string()),
            (vars::PORT, port.to_string()),
            (vars::RUN_ID, self.run.to_string()),
        ]);
        if let Some(broker) = self.broker {
            values.insert(vars::BROKER_BOOTSTRAP, broker.bootstrap());
        }
        Ok(values)
    }
}

/// A template of the scenario's, checked when it was validated.
fn fill(text: &str, values: &BTreeMap<&'static str, String>) -> String {
    match Template::parse(text) {
        Ok(template) => template.fill(|name| values.get(name).map(String::as_str)),
        Err(_) => text.to_string(),
    }
}

fn readiness(ready: &Ready) -> Readiness {
    match (&ready.http, ready.wait) {
        (Some(path), _) => Readiness::Http(path.clone()),
        (None, Some(wait)) => Readiness::Wait(wait.0),
        (None, None) => Readiness::Tcp,
    }
}

impl ServiceParts {
    /// Applies the setup SQL, creates the topics and starts every process,
    /// each ready before the next; logs under `dir`.
    pub async fn start(
        plan: &ServicePlan,
        context: &Context<'_>,
        dir: &Path,
        progress: &impl Fn(&str),
    ) -> Result<Self, StackError> {
        let name = &plan.name;
        if let Some(path) = &plan.setup_sql {
            let file = plan.folder.join(path);
            let sql = std::fs::read_to_string(&file).map_err(|source| StackError::Io {
                path: file.clone(),
                source,
            })?;
            apply_sql(context.direct_url, &sql)
                .await
                .map_err(|detail| StackError::Failed {
                    what: format!("{name}'s setup SQL ({path})"),
                    detail,
                })?;
            progress(&format!("{name}: {path} applied"));
        }
        let mut topics = Vec::new();
        let run_values = context.values(0)?;
        for topic in &plan.topics {
            let broker = context.broker.ok_or(StackError::NotRunning("broker"))?;
            let topic_name = fill(&topic.name, &run_values);
            let settings = TopicSettings {
                partitions: topic
                    .partitions
                    .map_or(context.topics.partitions, |p| p as i32),
                ..context.topics
            };
            broker.create_topic_with(&topic_name, settings).await?;
            topics.push((topic_name, settings));
        }
        let mut processes = Vec::new();
        for process in &plan.processes {
            let program = start_process((name, &plan.folder), process, context, dir).await?;
            progress(&format!(
                "{name}: {} ready (pid {}, port {})",
                process.name,
                program.pid().unwrap_or_default(),
                program.addr().port()
            ));
            processes.push((process.name.clone(), program));
        }
        Ok(Self {
            name: name.clone(),
            processes,
            target: plan.target(),
            topics,
            plan: plan.clone(),
        })
    }

    /// The process the load goes to.
    pub fn target(&self) -> &Program {
        &self.processes[self.target].1
    }

    /// Its processes that offer metrics, each with the series it maps to
    /// the lab's backlog, breaker and pool.
    pub fn scrape_targets(&self) -> Vec<ScrapeTarget> {
        let plans = &self.plan.processes;
        plans
            .iter()
            .zip(&self.processes)
            .filter_map(|(plan, (name, program))| {
                let metrics = plan.metrics.as_ref()?;
                let rename = renamed(metrics);
                Some(ScrapeTarget {
                    architecture: self.name.clone(),
                    service: if metrics.consumer() {
                        "consumer".into()
                    } else {
                        name.clone()
                    },
                    addr: program.addr(),
                    path: metrics.path.clone(),
                    rename,
                })
            })
            .collect()
    }

    /// The process called `name`.
    pub fn process_mut(&mut self, name: &str) -> Option<&mut Program> {
        self.processes
            .iter_mut()
            .find(|(n, _)| n == name)
            .map(|(_, program)| program)
    }
}

async fn start_process(
    (architecture, plan_folder): (&str, &Path),
    process: &ProcessPlan,
    context: &Context<'_>,
    dir: &Path,
) -> Result<Program, StackError> {
    let name = format!("{architecture}-{}", process.name);
    let log = Program::log_in(dir, &name);
    faultline_stack::start_on_a_free_port(
        &name,
        faultline_stack::free_port()?,
        &log,
        faultline_stack::PORT_ATTEMPTS,
        async |port| {
            let launch = launch_of((architecture, plan_folder), process, context, (&name, port))?;
            Program::start(launch, dir).await
        },
    )
    .await
}

/// How `process` is started as `name` with `port` as its own.
fn launch_of(
    (architecture, plan_folder): (&str, &Path),
    process: &ProcessPlan,
    context: &Context<'_>,
    (name, port): (&str, u16),
) -> Result<Launch, StackError> {
    let values = context.values(port)?;
    let command: Vec<String> = process.command.iter().map(|a| fill(a, &values)).collect();
    let (program, args) = command.split_first().ok_or_else(|| StackError::Failed {
        what: format!("{architecture}'s process {}", process.name),
        detail: "it has no command".into(),
    })?;
    let program = find_program(program, plan_folder).map_err(|detail| StackError::Failed {
        what: format!("{architecture}'s process {}", process.name),
        detail,
    })?;
    let env = process
        .env
        .iter()
        .map(|(key, value)| (key.clone(), fill(value, &values)))
        .collect();
    Ok(Launch {
        name: name.to_string(),
        program,
        args: args.to_vec(),
        env,
        folder: plan_folder.to_path_buf(),
        port,
        ready: readiness(&process.ready),
        ready_within: process.ready.timeout.0,
    })
}

/// Runs `sql` (several statements) on the database at `url`.
async fn apply_sql(url: &str, sql: &str) -> Result<(), String> {
    let client = faultline_services::tls::Target::parse(url)
        .map_err(|e| e.to_string())?
        .connect()
        .await
        .map_err(|e| e.to_string())?;
    tokio::time::timeout(Duration::from_secs(60), client.batch_execute(sql))
        .await
        .map_err(|_| "it ran longer than 60 s".to_string())?
        .map_err(|e| match e.as_db_error() {
            Some(db) => format!("{}: {}", db.code().code(), db.message()),
            None => e.to_string(),
        })
}

/// The series a process's `metrics` maps to the lab's names: (its name, the
/// lab's). A histogram's or summary's family gives its `_sum` and `_count`.
pub fn renamed(metrics: &crate::experiment::service::MetricsSettings) -> Vec<(String, String)> {
    let mut rename = Vec::new();
    let mut one = |theirs: &Option<String>, ours: String| {
        if let Some(theirs) = theirs {
            rename.push((theirs.clone(), ours));
        }
    };
    one(&metrics.backlog, names::CONSUMER_BACKLOG_MESSAGES.into());
    one(&metrics.breaker, names::CIRCUIT_BREAKER_STATE.into());
    one(&metrics.pool_max, names::DB_POOL_MAX.into());
    one(&metrics.rows, format!("{}_total", names::EVENTS_STORED));
    for (family, ours) in [
        (&metrics.pool_wait, names::DB_POOL_WAIT),
        (&metrics.connection_held, names::DB_CONNECTION_HELD),
    ] {
        for part in ["sum", "count"] {
            one(
                &family.as_ref().map(|f| format!("{f}_{part}")),
                format!("{ours}_{part}"),
            );
        }
    }
    rename
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_process_whose_port_was_taken_is_started_again_on_another() {
        let dir = std::env::temp_dir()
            .join("faultline-tests")
            .join(format!("process-port-taken-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let tried = dir.join("tried");
        // Its first start says what Node.js says when its port is taken;
        // the second listens on the port it is given.
        let script = format!(
            "if [ ! -e {tried} ]; then echo $PORT > {tried}; \
             echo \"Error: listen EADDRINUSE: address already in use 127.0.0.1:$PORT\" >&2; exit 1; fi; \
             exec python3 -m http.server --bind 127.0.0.1 $PORT",
            tried = tried.display()
        );
        let process = ProcessPlan {
            name: "api".into(),
            command: vec!["sh".into(), "-c".into(), script],
            env: BTreeMap::from([("PORT".to_string(), "{{ port }}".to_string())]),
            ready: Ready::default(),
            metrics: None,
        };
        let context = Context {
            database_url: "postgres://user:secret@127.0.0.1:5432/db",
            proxy: SocketAddr::from(([127, 0, 0, 1], 5432)),
            direct_url: "postgres://user:secret@127.0.0.1:5432/db",
            broker: None,
            topics: TopicSettings::single(1),
            run: "run",
        };
        let program = start_process(("mine", &dir), &process, &context, &dir.join("logs"))
            .await
            .unwrap();
        let first: u16 = std::fs::read_to_string(&tried)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert_ne!(program.addr().port(), first);
        tokio::net::TcpStream::connect(program.addr())
            .await
            .unwrap();
        drop(program);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_pools_own_series_are_read_under_the_labs_names() {
        let metrics: crate::experiment::service::MetricsSettings = toml::from_str(
            r#"
pool_wait = "hikaricp_connections_acquire_seconds"
connection_held = "hikaricp_connections_usage_seconds"
pool_max = "hikaricp_connections_max"
rows = "orders_created_total"
"#,
        )
        .unwrap();
        let rename = renamed(&metrics);
        let ours = |theirs: &str| {
            rename
                .iter()
                .find(|(t, _)| t == theirs)
                .map(|(_, o)| o.as_str())
        };
        assert_eq!(
            ours("hikaricp_connections_acquire_seconds_sum"),
            Some("db_pool_wait_seconds_sum")
        );
        assert_eq!(
            ours("hikaricp_connections_usage_seconds_count"),
            Some("db_connection_held_seconds_count")
        );
        assert_eq!(
            ours("hikaricp_connections_max"),
            Some("db_pool_max_connections")
        );
        assert_eq!(ours("orders_created_total"), Some("events_stored_total"));
        assert_eq!(ours("hikaricp_connections_usage_seconds_max"), None);
        assert_eq!(rename.len(), 6);
    }
}
