//! `--config FILE`: every flag of `claimd serve` from a TOML file, under the flag's own name
//! (`dns-timeout = "3s"`, `dns-server = ["192.0.2.53", "192.0.2.54"]`, `webhook-allow-http =
//! true`). A flag given on the command line wins over the environment (`CLAIMD_…`), which wins
//! over the file, which wins over the default. A key that is no flag is an error naming the key
//! and its line. `claimd config show` prints the settings that result, and where each comes
//! from, with secrets masked.

use std::ffi::OsString;
use std::path::Path;

use anyhow::{Context as _, bail};
use clap::parser::ValueSource;
use clap::{ArgAction, ArgMatches, CommandFactory as _, FromArgMatches as _};

use crate::cli::Cli;

/// The flags that take the file's settings: `serve`'s, and `config show`'s (the same).
fn takes_config(matches: &ArgMatches) -> Option<&ArgMatches> {
    match matches.subcommand() {
        Some(("serve", m)) => Some(m),
        Some(("config", m)) => match m.subcommand() {
            Some(("show", m)) => Some(m),
            _ => None,
        },
        _ => None,
    }
}

/// The command line as parsed, kept for `claimd config show`: the built command, its matches
/// (with the file's settings added), and the flags the file set.
pub struct Settings {
    command: clap::Command,
    matches: ArgMatches,
    from_file: Vec<String>,
}

/// Parses the command line, with the settings of `--config` (or `CLAIMD_CONFIG`) added where
/// neither a flag nor the environment gave a value. Exits as clap does on a usage error.
pub fn parse(argv: Vec<OsString>) -> anyhow::Result<(Cli, Settings)> {
    let mut command = Cli::command();
    command.build();
    let mut matches = command.clone().get_matches_from(argv.clone());
    let mut from_file = Vec::new();
    let path = takes_config(&matches).and_then(|m| m.get_one::<std::path::PathBuf>("config"));
    if let Some(path) = path.cloned() {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read the config file {}", path.display()))?;
        let serve = command
            .find_subcommand("serve")
            .expect("claimd has a serve command");
        let given = takes_config(&matches).expect("a command that takes --config");
        let extra = file_args(&path, &text, serve, given)?;
        from_file = extra
            .iter()
            .filter_map(|a| a.to_str()?.strip_prefix("--"))
            .map(|a| a.split('=').next().unwrap_or(a).to_owned())
            .collect();
        let mut argv = argv;
        argv.extend(extra);
        matches = command.clone().get_matches_from(argv);
    }
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    Ok((
        cli,
        Settings {
            command,
            matches,
            from_file,
        },
    ))
}

/// The 1-based line where `key` is set in `text` (a top-level `key = …`), if found.
fn line_of(text: &str, key: &str) -> Option<usize> {
    text.lines()
        .position(|line| {
            let line = line.trim_start();
            let rest = line
                .strip_prefix(key)
                .or_else(|| line.strip_prefix(&format!("\"{key}\"")))
                .or_else(|| line.strip_prefix(&format!("'{key}'")));
            rest.is_some_and(|r| r.trim_start().starts_with('='))
        })
        .map(|i| i + 1)
}

/// The arguments that carry the file's settings, for the flags that neither the command line
/// nor the environment set.
fn file_args(
    path: &Path,
    text: &str,
    serve: &clap::Command,
    given: &ArgMatches,
) -> anyhow::Result<Vec<OsString>> {
    let shown = path.display();
    let table: toml::Table = toml::from_str(text).with_context(|| format!("{shown}: not TOML"))?;
    let mut extra = Vec::new();
    for (key, value) in &table {
        let at = || {
            line_of(text, key).map_or_else(|| shown.to_string(), |n| format!("{shown} line {n}"))
        };
        let Some(arg) = serve
            .get_arguments()
            .find(|a| a.get_long() == Some(key.as_str()) && key != "config")
        else {
            bail!(
                "{}: unknown key '{key}': not a flag of `claimd serve` (see `claimd serve \
                 --help`; keys are the flags' names, e.g. dns-timeout = \"3s\")",
                at()
            );
        };
        let id = arg.get_id().as_str();
        if matches!(
            given.value_source(id),
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        ) {
            continue;
        }
        let flag = format!("--{key}");
        match (arg.get_action(), value) {
            (ArgAction::SetTrue, toml::Value::Boolean(on)) => {
                if *on {
                    extra.push(flag.into());
                }
            }
            (ArgAction::SetTrue, _) => bail!("{}: '{key}' is true or false", at()),
            (_, toml::Value::Array(items)) => {
                for item in items {
                    extra.push(format!("{flag}={}", scalar(item).with_context(at)?).into());
                }
            }
            (_, other) => extra.push(format!("{flag}={}", scalar(other).with_context(at)?).into()),
        }
    }
    Ok(extra)
}

fn scalar(value: &toml::Value) -> anyhow::Result<String> {
    Ok(match value {
        toml::Value::String(s) => s.clone(),
        toml::Value::Integer(n) => n.to_string(),
        toml::Value::Float(f) => f.to_string(),
        toml::Value::Boolean(b) => b.to_string(),
        other => bail!("a {} is not a flag's value", other.type_str()),
    })
}

/// Flags whose values are never printed.
fn is_secret(id: &str) -> bool {
    id.contains("token") || id.contains("secret") || id.contains("password")
}

/// A database URL with its password replaced.
fn without_password(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("****"));
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}

impl Settings {
    /// `claimd config show`: every setting of `claimd serve`, as TOML a config file could hold,
    /// with where it came from; secrets masked.
    pub fn show(&self) {
        if let Some(given) = takes_config(&self.matches) {
            print_settings(&self.command, given, &self.from_file);
        }
    }
}

fn print_settings(command: &clap::Command, given: &ArgMatches, from_file: &[String]) {
    let serve = command.find_subcommand("serve").expect("a serve command");
    for arg in serve.get_arguments() {
        let (Some(long), id) = (arg.get_long(), arg.get_id().as_str()) else {
            continue;
        };
        if matches!(long, "help" | "version" | "config") {
            continue;
        }
        let source = match given.value_source(id) {
            Some(ValueSource::CommandLine) if from_file.iter().any(|k| k == long) => "file",
            Some(ValueSource::CommandLine) => "flag",
            Some(ValueSource::EnvVariable) => "env",
            Some(ValueSource::DefaultValue) => "default",
            _ => {
                println!("# {long} =  (not set)");
                continue;
            }
        };
        let values: Vec<String> = given
            .get_raw(id)
            .map(|raw| {
                raw.map(|v| {
                    let v = v.to_string_lossy();
                    if is_secret(id) {
                        "****".to_owned()
                    } else if id == "database_url" {
                        without_password(&v)
                    } else {
                        v.into_owned()
                    }
                })
                .collect()
            })
            .unwrap_or_default();
        let quoted: Vec<String> = values.iter().map(|v| format!("{v:?}")).collect();
        let value = match (arg.get_action(), quoted.as_slice()) {
            (ArgAction::SetTrue, [v]) => v.trim_matches('"').to_owned(),
            (ArgAction::Append, _) => format!("[{}]", quoted.join(", ")),
            (_, [v]) => v.clone(),
            _ => format!("[{}]", quoted.join(", ")),
        };
        println!("{long} = {value}  # {source}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_line_of_a_key() {
        let text = "# claimd\n\ndns-timeout = \"3s\"\n  \"listen\"= \"127.0.0.1:0\"\n";
        assert_eq!(line_of(text, "dns-timeout"), Some(3));
        assert_eq!(line_of(text, "listen"), Some(4));
        assert_eq!(line_of(text, "dns"), None);
    }

    #[test]
    fn masks_database_passwords() {
        assert_eq!(
            without_password("postgres://claimd:hunter2@db:5432/claimd"),
            "postgres://claimd:****@db:5432/claimd"
        );
        assert_eq!(without_password("sqlite:claimd.db"), "sqlite:claimd.db");
    }
}
