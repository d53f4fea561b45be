//! `docs/guide.md` as a script: its ```sh commands, run one by one through bash with the real
//! `kubectl` and `helm` against the test control plane, and its generated output blocks.
//!
//! A command is run only if the guide holds it, line for line, and at the end every command of
//! the guide must have been run ([`Guide::finish`]): the guide cannot name a command nobody
//! runs. An output block follows a marker `<!-- output: COMMAND -->` and holds what the command
//! printed; it is compared with what it prints now, ages and timestamps aside, and rewritten
//! when `PORTCULLIS_UPDATE_GUIDE=1`.
#![allow(
    dead_code,
    reason = "each test binary uses a different part of these helpers"
)]

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

/// Set to `1` to rewrite the guide's output blocks with what the commands print now.
pub const UPDATE_ENV: &str = "PORTCULLIS_UPDATE_GUIDE";

/// The guide's path in the repository.
pub const GUIDE: &str = "docs/guide.md";

/// What a command printed.
#[derive(Debug)]
pub struct Ran {
    /// Exit status 0.
    pub success: bool,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

/// The guide being run.
pub struct Guide {
    text: String,
    commands: Vec<String>,
    ran: BTreeSet<String>,
    outdated: Vec<String>,
    /// Text replaced in every command before it runs (`deploy/examples/` by the test's copy).
    substitutions: Vec<(String, String)>,
    /// Environment of every command (`KUBECONFIG`, `PATH` with kubectl and helm, `GATEWAY`).
    env: Vec<(String, String)>,
    /// Where commands run (the guide's YAML files are written there).
    pub dir: PathBuf,
}

impl Guide {
    /// Reads the guide; commands run in `dir` with `env` and `substitutions`.
    pub fn read(
        dir: &Path,
        env: Vec<(String, String)>,
        substitutions: Vec<(String, String)>,
    ) -> Self {
        let text = std::fs::read_to_string(repo(GUIDE)).expect("docs/guide.md reads");
        let commands = fenced(&text, "sh")
            .iter()
            .flat_map(|block| {
                block
                    .lines()
                    .map(str::trim)
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .collect();
        Self {
            text,
            commands,
            ran: BTreeSet::new(),
            outdated: Vec::new(),
            substitutions,
            env,
            dir: dir.to_owned(),
        }
    }

    /// The objects of the guide's ```yaml blocks, written to `<dir>/<name>.yaml` after the first
    /// object's name (`products.yaml`), so that `kubectl apply -f products.yaml` finds them.
    pub fn write_yaml_files(&self) {
        for block in fenced(&self.text, "yaml") {
            let documents: Vec<serde_json::Value> =
                serde_saphyr::from_multiple(&block).unwrap_or_default();
            let Some(name) = documents
                .iter()
                .find(|d| d.get("kind").is_some())
                .and_then(|d| d["metadata"]["name"].as_str())
            else {
                continue;
            };
            std::fs::write(self.dir.join(format!("{name}.yaml")), &block)
                .expect("a guide file is written");
        }
    }

    /// Sets the environment variable `name` of the commands run from now on.
    pub fn set_env(&mut self, name: &str, value: &str) {
        self.env.retain(|(n, _)| n != name);
        self.env.push((name.to_owned(), value.to_owned()));
    }

    /// Runs the guide's `command` (which it must hold) through bash; panics when it fails.
    pub fn run(&mut self, command: &str) -> Ran {
        let ran = self.try_run(command);
        assert!(
            ran.success,
            "the guide's `{command}` failed:\n{}{}",
            ran.stdout, ran.stderr
        );
        ran
    }

    /// Runs the guide's `command` through bash, whatever its outcome.
    pub fn try_run(&mut self, command: &str) -> Ran {
        assert!(
            self.commands.iter().any(|c| c == command),
            "docs/guide.md has no command `{command}`"
        );
        self.ran.insert(command.to_owned());
        let mut script = command.to_owned();
        for (from, to) in &self.substitutions {
            script = script.replace(from.as_str(), to);
        }
        let output = Command::new("bash")
            .args(["-euo", "pipefail", "-c", &script])
            .current_dir(&self.dir)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .output()
            .expect("bash runs");
        Ran {
            success: output.status.success(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Runs `command` and checks its output against the guide's block for it.
    pub fn run_shown(&mut self, command: &str) -> Ran {
        let ran = self.run(command);
        self.shown(command, &ran.stdout);
        ran
    }

    /// Compares `output` with the block after `<!-- output: command -->` (ages and times
    /// aside), and puts `output` there.
    pub fn shown(&mut self, command: &str, output: &str) {
        let marker = format!("<!-- output: {command} -->\n```text\n");
        let start = self
            .text
            .find(&marker)
            .unwrap_or_else(|| panic!("docs/guide.md has no output block for `{command}`"))
            + marker.len();
        let end = start
            + self.text[start..]
                .find("```")
                .expect("the output block is closed");
        let before = &self.text[start..end];
        if normalized(before) != normalized(output) {
            self.outdated.push(format!(
                "`{command}` printed:\n{output}\nthe guide shows:\n{before}"
            ));
        }
        self.text.replace_range(start..end, output);
    }

    /// Checks that every command of the guide ran and every output block is current (or
    /// rewrites them, with `PORTCULLIS_UPDATE_GUIDE=1`).
    pub fn finish(self) {
        let not_run: Vec<&String> = self
            .commands
            .iter()
            .filter(|c| !self.ran.contains(*c))
            .collect();
        assert!(
            not_run.is_empty(),
            "docs/guide.md has commands no test runs: {not_run:#?}"
        );
        if std::env::var(UPDATE_ENV).as_deref() == Ok("1") {
            std::fs::write(repo(GUIDE), &self.text).expect("docs/guide.md is written");
            return;
        }
        assert!(
            self.outdated.is_empty(),
            "docs/guide.md shows outputs the commands no longer print; rerun with {UPDATE_ENV}=1 \
             and review the diff:\n{}",
            self.outdated.join("\n")
        );
    }
}

/// `path` in the repository.
pub fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// The fenced blocks of `markdown` whose info string is `language`.
pub fn fenced(markdown: &str, language: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<(bool, String)> = None;
    for line in markdown.lines() {
        let trimmed = line.trim_start();
        match &mut current {
            None if trimmed.starts_with("```") => {
                let info = trimmed.trim_start_matches('`').trim();
                current = Some((info == language, String::new()));
            }
            None => {}
            Some(_) if trimmed.starts_with("```") => {
                if let Some((true, text)) = current.take() {
                    blocks.push(text);
                }
                current = None;
            }
            Some((_, text)) => {
                text.push_str(line);
                text.push('\n');
            }
        }
    }
    blocks
}

/// `text` with what changes from run to run masked: the AGE column (the last word of a
/// table row, e.g. `12s`, `3m4s`), RFC 3339 timestamps, and the column padding they cause.
pub fn normalized(text: &str) -> String {
    text.lines()
        .map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            words
                .iter()
                .enumerate()
                .map(|(index, word)| {
                    let age = index + 1 == words.len() && index > 0 && is_age(word);
                    if age || is_timestamp(word) {
                        "<time>"
                    } else {
                        word
                    }
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn is_age(word: &str) -> bool {
    !word.is_empty()
        && word.chars().next().is_some_and(|c| c.is_ascii_digit())
        && word
            .chars()
            .all(|c| c.is_ascii_digit() || "smhd".contains(c))
        && word.chars().any(|c| "smhd".contains(c))
}

fn is_timestamp(word: &str) -> bool {
    word.len() == 20 && word.ends_with('Z') && word.as_bytes().get(10) == Some(&b'T')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_and_timestamps_are_masked() {
        assert_eq!(
            normalized("NAME   READY   AGE\nedge   3/3     12s\n"),
            normalized("NAME   READY   AGE\nedge   3/3     3m40s\n")
        );
        assert_ne!(normalized("edge 3/3 12s"), normalized("edge 2/3 12s"));
        assert!(normalized("a 2026-12-07T21:00:00Z").ends_with("<time>"));
    }
}
