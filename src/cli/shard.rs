//! `--shard`: `i/n` as given, or `auto` / `auto/N` read from the scheduler's environment.
//!
//! - Kubernetes Indexed Job: the index is `JOB_COMPLETION_INDEX`; the count is `auto/N` (the Job's
//!   `completions`), else `DINOREG_SHARD_COUNT`.
//! - Slurm job array: the index is `SLURM_ARRAY_TASK_ID` minus `SLURM_ARRAY_TASK_MIN` (so `--array=1-4`
//!   works too); the count is `auto/N`, else `SLURM_ARRAY_TASK_COUNT`.

use anyhow::{bail, Context};
use dinoreg::retrieval::Shard;

/// The shard `spec` names, reading the scheduler's variables through `env` for `auto`.
pub fn parse_shard(spec: &str, env: impl Fn(&str) -> Option<String>) -> anyhow::Result<Shard> {
    let Some(rest) = spec.strip_prefix("auto") else {
        return Ok(spec.parse()?);
    };
    let count_arg = match rest.strip_prefix('/') {
        Some(n) => Some(n.trim().parse::<usize>().ok().with_context(|| {
            format!("invalid --shard {spec:?}: expected auto or auto/N with N a number")
        })?),
        None if rest.is_empty() => None,
        None => bail!("invalid --shard {spec:?}: expected i/n, auto or auto/N"),
    };
    let number = |name: &str| -> anyhow::Result<Option<usize>> {
        env(name)
            .map(|v| {
                v.trim()
                    .parse::<usize>()
                    .with_context(|| format!("--shard auto: {name}={v:?} is not a number"))
            })
            .transpose()
    };
    let (index, env_count) = if let Some(i) = number("JOB_COMPLETION_INDEX")? {
        (i, number("DINOREG_SHARD_COUNT")?)
    } else if let Some(id) = number("SLURM_ARRAY_TASK_ID")? {
        let min = number("SLURM_ARRAY_TASK_MIN")?.unwrap_or(0);
        let index = id.checked_sub(min).with_context(|| {
            format!("--shard auto: SLURM_ARRAY_TASK_ID {id} is below SLURM_ARRAY_TASK_MIN {min}")
        })?;
        (index, number("SLURM_ARRAY_TASK_COUNT")?)
    } else {
        bail!(
            "--shard auto: neither JOB_COMPLETION_INDEX (Kubernetes Indexed Job) nor SLURM_ARRAY_TASK_ID (Slurm array) is set; give --shard i/n"
        );
    };
    let Some(count) = count_arg.or(env_count) else {
        bail!("--shard auto: the number of shards is unknown; give --shard auto/N (or set DINOREG_SHARD_COUNT)");
    };
    Ok(Shard::new(index, count)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn auto_reads_kubernetes_and_slurm() {
        let k8s = [("JOB_COMPLETION_INDEX", "2")];
        assert_eq!(
            parse_shard("auto/4", env(&k8s)).unwrap(),
            Shard::new(2, 4).unwrap()
        );
        assert!(parse_shard("auto", env(&k8s)).is_err());
        let slurm = [
            ("SLURM_ARRAY_TASK_ID", "3"),
            ("SLURM_ARRAY_TASK_MIN", "1"),
            ("SLURM_ARRAY_TASK_COUNT", "4"),
        ];
        assert_eq!(
            parse_shard("auto", env(&slurm)).unwrap(),
            Shard::new(2, 4).unwrap()
        );
        assert!(parse_shard("auto", env(&[])).is_err());
        assert_eq!(
            parse_shard("1/3", env(&[])).unwrap(),
            Shard::new(1, 3).unwrap()
        );
    }
}
