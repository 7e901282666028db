//! Every setting as a form shows it, read off the definitions in [`super::settings`]: the help
//! line and kind from the command line's flags, the default from the `Default` impls, the range
//! from [`RANGES`](super::settings::RANGES). The page builds its settings form from this table,
//! so a setting, default or range is never written twice.

use clap::{ArgAction, Args, Command};
use serde::Serialize;

use super::settings::{camel, range, DataSettings, Range, TrainSettings};
use crate::lora::Target;

/// One setting of [`settings_table`].
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SettingSpec {
    /// The key in the browser's settings objects (camelCase).
    pub name: String,
    /// "train" ([`TrainSettings`]) or "data" ([`DataSettings`]).
    pub group: &'static str,
    /// One line: the command line's help.
    pub help: String,
    /// The default value; null when unset (no step limit, length grouping decided by shuffling).
    pub default: serde_json::Value,
    /// "integer", "number", "boolean", "choice" or "list".
    pub kind: &'static str,
    /// A choice's values; a list's items (`all-linear` stands for all of them).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub choices: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub range: Option<Range>,
}

/// Every training and data setting, in the command line's order (training first).
pub fn settings_table() -> Vec<SettingSpec> {
    let mut table = specs("train", TrainSettings::augment_args(Command::new("train")), &TrainSettings::default());
    table.extend(specs("data", DataSettings::augment_args(Command::new("data")), &DataSettings::default()));
    table
}

fn specs<T: Serialize>(group: &'static str, command: Command, defaults: &T) -> Vec<SettingSpec> {
    let defaults = serde_json::to_value(defaults).unwrap_or_default();
    command
        .get_arguments()
        .map(|arg| {
            let snake = arg.get_id().as_str().to_string();
            let name = camel(&snake);
            let default = defaults[&name].clone();
            let choices: Vec<String> = arg
                .get_possible_values()
                .iter()
                .filter(|v| !v.is_hide_set())
                .map(|v| v.get_name().to_string())
                .collect();
            let (kind, choices) = if matches!(arg.get_action(), ArgAction::SetTrue | ArgAction::SetFalse) {
                ("boolean", vec![])
            } else if !choices.is_empty() {
                ("choice", choices)
            } else if arg.get_value_delimiter().is_some() {
                let mut items: Vec<String> = Target::ALL.iter().map(|t| t.hf_name().to_string()).collect();
                items.push("all-linear".into());
                ("list", items)
            } else if default.is_f64() || arg.get_value_parser().type_id() == std::any::TypeId::of::<f64>() {
                ("number", vec![])
            } else {
                ("integer", vec![])
            };
            let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
            SettingSpec { range: range(&snake), name, group, help, default, kind, choices }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str) -> SettingSpec {
        settings_table().into_iter().find(|s| s.name == name).unwrap_or_else(|| panic!("{name} in the table"))
    }

    #[test]
    fn the_table_names_every_setting_once() {
        let table = settings_table();
        let mut names: Vec<&str> = table.iter().map(|s| s.name.as_str()).collect();
        names.sort();
        let mut want: Vec<String> = [
            serde_json::to_value(TrainSettings::default()).unwrap(),
            serde_json::to_value(DataSettings::default()).unwrap(),
        ]
        .iter()
        .flat_map(|v| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>())
        .collect();
        // Both name a seed; the command line has one (the run's), which the data split takes too.
        want.sort();
        want.dedup();
        assert_eq!(names, want);
    }

    #[test]
    fn kinds_defaults_and_ranges_come_from_the_definitions() {
        let lr = spec("lr");
        assert_eq!((lr.kind, lr.group), ("number", "train"));
        assert_eq!(lr.default.as_f64().map(|v| v as f32), Some(2e-4));
        assert_eq!(lr.range.map(|r| r.to_string()).as_deref(), Some("(0, 1]"));
        assert_eq!(lr.help, "Peak learning rate, in (0, 1]");
        let seq = spec("seqLen");
        assert_eq!((seq.kind, seq.group, seq.default.as_u64()), ("integer", "data", Some(512)));
        assert_eq!(seq.range.map(|r| r.min), Some(8.0));
        let steps = spec("maxSteps");
        assert_eq!((steps.kind, steps.default.is_null()), ("integer", true));
        assert_eq!(spec("schedule").choices, ["constant", "linear", "cosine"]);
        assert_eq!(spec("trainOn").choices, ["answers", "all"]);
        let format = spec("format");
        assert_eq!((format.kind, format.default.is_null(), format.choices.len()), ("choice", true, 6));
        assert_eq!(spec("warmup").range.map(|r| r.to_string()).as_deref(), Some("[0, ∞)"));
        assert_eq!((spec("shuffle").kind, spec("shuffle").default.as_bool()), ("boolean", Some(true)));
        assert_eq!((spec("rslora").kind, spec("rslora").default.as_bool()), ("boolean", Some(false)));
        assert_eq!((spec("dora").kind, spec("dora").default.as_bool()), ("boolean", Some(false)));
        assert!(spec("dora").help.contains("DoRA"), "{}", spec("dora").help);
        let targets = spec("targets");
        assert_eq!((targets.kind, targets.default.clone()), ("list", serde_json::json!(["all-linear"])));
        assert!(targets.choices.contains(&"down_proj".to_string()) && targets.choices.contains(&"all-linear".into()));
        let recompute = spec("recompute");
        assert_eq!((recompute.kind, recompute.default.as_str()), ("choice", Some("auto")));
        assert_eq!(recompute.choices, ["auto", "on", "off"]);
        let budget = spec("memoryBudget");
        assert_eq!((budget.kind, budget.default.is_null()), ("number", true));
        let grouped = spec("groupByLength");
        assert_eq!((grouped.kind, grouped.default.is_null()), ("choice", true));
    }
}
