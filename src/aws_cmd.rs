//! `pkgrelay aws`: operate the deployed pipeline — `start` an execution and
//! follow it to its end (what `aws stepfunctions start-execution` does, in the
//! pipeline's own words), `history` of the recent executions. The stack is
//! the one `cdk deploy --outputs-file` describes; credentials and region come
//! from the usual AWS configuration chain (`AWS_ENDPOINT_URL` included).

use crate::aws_outputs::{StackOutputs, sdk_config};
use crate::executions::{Executions, Outcome, clock, took, view_for};
use anyhow::Context as _;
use clap::{Args, Subcommand};
use serde_json::json;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Subcommand)]
pub enum AwsAction {
    /// Start an execution of the pipeline and follow it to its end.
    Start {
        #[command(flatten)]
        stack: StackArgs,
        /// Ask no source: rebuild, re-sign and republish from the store.
        #[arg(long)]
        force_rebuild: bool,
        /// The repository of `config/repositories.yaml` to run (default: the APT one).
        #[arg(long, value_name = "NAME")]
        repository: Option<String>,
        /// Print the execution's ARN and console URL and return.
        #[arg(long)]
        no_follow: bool,
        /// One JSON document at the end (the summary) instead of live lines.
        #[arg(long)]
        json: bool,
    },
    /// The recent executions: trigger, status, start, duration, what they published.
    History {
        #[command(flatten)]
        stack: StackArgs,
        /// How many executions, newest first.
        #[arg(short = 'n', long = "count", default_value_t = 20)]
        count: usize,
        /// One JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// Which deployed stack.
#[derive(Args)]
pub struct StackArgs {
    /// Deployment: the stack is `pkgrelay-<env>` (dev, staging, prod).
    #[arg(long)]
    env: String,
    /// `cdk deploy --outputs-file` output naming the stack's resources.
    #[arg(long, default_value = "cdk/cdk-outputs.json")]
    outputs_file: PathBuf,
}

impl StackArgs {
    fn read(&self) -> anyhow::Result<StackOutputs> {
        StackOutputs::read(&self.outputs_file, &self.env)
    }
}

/// An execution name that says what started it: `manual-20261129T184001Z-3f2a`.
fn execution_name(force_rebuild: bool, repository: Option<&str>) -> String {
    let now = time::OffsetDateTime::now_utc();
    let f = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    let stamp = now.format(&f).unwrap_or_default();
    let salt = format!("{:04x}", (now.nanosecond() ^ std::process::id()) & 0xffff);
    let what = if force_rebuild { "force-rebuild" } else { "manual" };
    match repository {
        Some(r) => format!("{r}-{what}-{stamp}-{salt}"),
        None => format!("{what}-{stamp}-{salt}"),
    }
}

/// Print an outcome (lines, or one JSON document) and turn it into an exit code.
pub fn print_outcome(outcome: &Outcome, json: bool) -> anyhow::Result<ExitCode> {
    if json {
        println!("{}", serde_json::to_string_pretty(outcome)?);
    } else {
        for line in outcome.report() {
            println!("{line}");
        }
    }
    Ok(if outcome.succeeded() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

pub async fn run(action: AwsAction) -> anyhow::Result<ExitCode> {
    match action {
        AwsAction::Start { stack, force_rebuild, repository, no_follow, json } => {
            let outputs = stack.read()?;
            let executions = Executions::new(&sdk_config().await);
            let mut input = json!({"trigger": "manual", "force_rebuild": force_rebuild});
            if let Some(r) = &repository {
                input["repository"] = json!(r);
            }
            let name = execution_name(force_rebuild, repository.as_deref());
            let arn = executions.start(&outputs.state_machine_arn, &name, &input).await?;
            let console = crate::executions::console_url(&arn);
            if no_follow {
                if json {
                    println!(
                        "{}",
                        serde_json::to_string_pretty(&json!({"execution_arn": arn, "console_url": console}))?
                    );
                } else {
                    println!("execution: {arn}");
                    println!("console: {console}");
                }
                return Ok(ExitCode::SUCCESS);
            }
            let mut view = view_for(json);
            view.note(&format!("started {arn}"));
            let outcome = executions.follow(&arn, view.as_mut()).await?;
            print_outcome(&outcome, json)
        }
        AwsAction::History { stack, count, json } => {
            let outputs = stack.read()?;
            let executions = Executions::new(&sdk_config().await);
            let arns = executions.recent(&outputs.state_machine_arn, count).await?;
            let mut rows = Vec::new();
            for arn in &arns {
                rows.push(executions.describe(arn).await.with_context(|| format!("execution {arn}"))?);
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
                return Ok(ExitCode::SUCCESS);
            }
            if rows.is_empty() {
                println!("no executions of {}", outputs.state_machine_arn);
                return Ok(ExitCode::SUCCESS);
            }
            let table: Vec<[String; 5]> = rows
                .iter()
                .map(|o| {
                    let duration = match o.stop {
                        Some(stop) => took(stop - o.start),
                        None => format!("{}…", took(time::OffsetDateTime::now_utc() - o.start)),
                    };
                    [clock(o.start), o.status.clone(), duration, o.trigger.to_string(), o.published()]
                })
                .collect();
            let header = ["START (UTC)", "STATUS", "DURATION", "TRIGGER", "PUBLISHED"].map(str::to_owned);
            let widths: Vec<usize> = (0..4)
                .map(|i| table.iter().map(|r| r[i].chars().count()).chain([header[i].len()]).max().unwrap_or(0))
                .collect();
            for row in std::iter::once(&header).chain(table.iter()) {
                let mut line = String::new();
                for (i, w) in widths.iter().enumerate() {
                    line.push_str(&format!("{:w$}  ", row[i], w = w));
                }
                line.push_str(&row[4]);
                println!("{line}");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
