//! `hsync schema-diff [--apply] [--format sql|json|text]`: compares HubSpot's property
//! definitions with the destination's tables and prints the plan.
//!
//! Exit codes: 0 when there is no drift (or `--apply` applied it), 3 when there is drift and
//! `--apply` was not given (so it can gate a deploy), 4 when a change is incompatible and needs
//! an operator. Removed properties are reported once and never dropped.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, ValueEnum};

use crate::schema::{Change, SchemaPlan};

/// Exit code when drift exists and was not applied.
pub const EXIT_DRIFT: u8 = 3;
/// Exit code when a change is incompatible.
pub const EXIT_INCOMPATIBLE: u8 = 4;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// The statements the destination would run.
    #[default]
    Sql,
    /// The plan as JSON.
    Json,
    /// One line per change.
    Text,
}

/// Options of `hsync schema-diff`.
#[derive(Debug, Args)]
pub struct SchemaDiffArgs {
    /// Apply the creating, adding and widening changes (never drops anything).
    #[arg(long)]
    pub apply: bool,
    #[arg(long, value_enum, default_value_t = Format::Sql)]
    pub format: Format,
    /// Only these object types (default: sync.objects from the configuration).
    #[arg(long = "object")]
    pub objects: Vec<String>,
}

fn describe_change(change: &Change) -> String {
    match change {
        Change::CreateTable { schema } => format!("create table {} with {} columns", schema.name, schema.columns.len()),
        Change::AddColumn { column } => format!("add column {} ({:?})", column.name, column.ty),
        Change::Widen { column, from, to } => format!("widen column {column} from {from:?} to {to:?}"),
        Change::Incompatible { column, reason, .. } => format!("INCOMPATIBLE column {column}: {reason}"),
        Change::Overflow { property } => format!("property {property} goes to the overflow column (column limit)"),
        Change::Unmappable { property, reason } => format!("property {property:?} is skipped: {reason}"),
        Change::ReplaceView { view, reason } => format!("replace view {view} ({})", reason.describe()),
        Change::PropertyRemoved { column, property } => {
            format!("property {property} is archived or gone; column {column} is kept (never dropped)")
        }
    }
}

fn print_plans(format: Format, plans: &[(SchemaPlan, Vec<String>)]) -> anyhow::Result<()> {
    match format {
        Format::Json => {
            let json: Vec<_> = plans
                .iter()
                .map(|(plan, sql)| serde_json::json!({ "table": plan.table, "changes": plan.changes, "statements": sql, "drift": !plan.is_empty() }))
                .collect();
            println!("{}", serde_json::to_string_pretty(&json)?);
        }
        Format::Sql => {
            for (plan, sql) in plans {
                if plan.is_empty() {
                    println!("-- {}: no drift", plan.table);
                    continue;
                }
                for change in plan.changes.iter().filter(|c| !c.alters()) {
                    println!("-- {}: {}", plan.table, describe_change(change));
                }
                for statement in sql {
                    println!("{};", statement.trim_end_matches(';'));
                }
            }
        }
        Format::Text => {
            for (plan, _) in plans {
                if plan.is_empty() {
                    println!("{}: no drift", plan.table);
                }
                for change in plan.changes.iter().filter(|c| !matches!(c, Change::Overflow { .. }) || !plan.is_empty())
                {
                    println!("{}: {}", plan.table, describe_change(change));
                }
            }
        }
    }
    Ok(())
}

/// Runs the command.
pub async fn run(
    config_path: Option<&Path>,
    args: SchemaDiffArgs,
    leasing: &super::session::Leasing,
) -> anyhow::Result<ExitCode> {
    let session = if args.apply {
        super::session::Session::open(config_path, leasing).await?
    } else {
        super::session::Session::open_read_only(config_path).await?
    };
    let runner = &session.jobs.runner;
    let objects = session.objects(&args.objects).await?;
    let mut plans = Vec::new();
    for object in &objects {
        let planned = runner.plan_schema(object).await?;
        let sql = runner.dest.render_alter(&planned.plan);
        plans.push((object, planned, sql));
    }
    let printable: Vec<(SchemaPlan, Vec<String>)> = plans.iter().map(|(_, p, s)| (p.plan.clone(), s.clone())).collect();
    print_plans(args.format, &printable)?;
    let incompatible = plans.iter().any(|(_, p, _)| p.plan.incompatible().count() > 0);
    let drift = plans.iter().any(|(_, p, _)| !p.plan.is_empty());
    if args.apply {
        for (object, planned, _) in plans {
            if planned.plan.incompatible().count() > 0 {
                continue;
            }
            // As a sync job applies it: the columns gained are re-read for the rows copied.
            session
                .jobs
                .apply_plan(object, planned)
                .await
                .with_context(|| format!("applying the plan for {}", object.table))?;
        }
    }
    Ok(if incompatible {
        eprintln!("incompatible schema changes need an operator: see the INCOMPATIBLE lines above");
        ExitCode::from(EXIT_INCOMPATIBLE)
    } else if drift && !args.apply {
        ExitCode::from(EXIT_DRIFT)
    } else {
        ExitCode::SUCCESS
    })
}
