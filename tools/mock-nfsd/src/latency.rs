//! Injected reply latency (`--latency`).

use crate::rng::Rng;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;
use thiserror::Error;

/// The longest delay any distribution produces: a sample beyond it is clamped.
pub const LATENCY_MAX: Duration = Duration::from_secs(60);

/// A per-reply delay distribution.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LatencyDist {
    /// Always the same delay.
    Fixed(Duration),
    /// Uniform between the bounds (inclusive).
    Uniform { low: Duration, high: Duration },
    /// Log-normal with the given median and 99th percentile.
    LogNormal { median: Duration, p99: Duration },
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LatencySpecError {
    #[error("unknown latency `{0}` (expected fixed:T, uniform:T1-T2 or lognormal:median=T,p99=T)")]
    UnknownKind(String),
    #[error("latency `{spec}`: {why}")]
    Invalid { spec: String, why: String },
}

/// Parses a duration with a unit: `250ns`, `200us`, `1.5ms`, `2s`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(|| format!("`{s}` has no unit (ns, us, ms or s)"))?;
    let (num, unit) = s.split_at(split);
    let value: f64 = num
        .parse()
        .map_err(|_| format!("`{s}`: `{num}` is not a number"))?;
    let scale_ns = match unit {
        "ns" => 1.0,
        "us" | "µs" => 1e3,
        "ms" => 1e6,
        "s" => 1e9,
        other => return Err(format!("`{s}`: unknown unit `{other}` (ns, us, ms or s)")),
    };
    let ns = value * scale_ns;
    if !ns.is_finite() || ns < 0.0 || ns > LATENCY_MAX.as_nanos() as f64 {
        return Err(format!("`{s}` is out of range (0 to {LATENCY_MAX:?})"));
    }
    Ok(Duration::from_nanos(ns.round() as u64))
}

impl FromStr for LatencyDist {
    type Err = LatencySpecError;

    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        let invalid = |why: String| LatencySpecError::Invalid {
            spec: spec.to_string(),
            why,
        };
        let (kind, rest) = spec
            .split_once(':')
            .ok_or_else(|| LatencySpecError::UnknownKind(spec.to_string()))?;
        match kind {
            "fixed" => Ok(LatencyDist::Fixed(parse_duration(rest).map_err(invalid)?)),
            "uniform" => {
                let (a, b) = rest
                    .split_once('-')
                    .ok_or_else(|| invalid("expected uniform:LOW-HIGH".into()))?;
                let low = parse_duration(a).map_err(invalid)?;
                let high = parse_duration(b).map_err(invalid)?;
                if high < low {
                    return Err(invalid("HIGH is below LOW".into()));
                }
                Ok(LatencyDist::Uniform { low, high })
            }
            "lognormal" => {
                let mut median = None;
                let mut p99 = None;
                for part in rest.split(',') {
                    match part.split_once('=') {
                        Some(("median", v)) => median = Some(parse_duration(v).map_err(invalid)?),
                        Some(("p99", v)) => p99 = Some(parse_duration(v).map_err(invalid)?),
                        _ => return Err(invalid(format!("unknown parameter `{part}`"))),
                    }
                }
                let (Some(median), Some(p99)) = (median, p99) else {
                    return Err(invalid("expected lognormal:median=T,p99=T".into()));
                };
                if median.is_zero() || p99 < median {
                    return Err(invalid("need 0 < median <= p99".into()));
                }
                Ok(LatencyDist::LogNormal { median, p99 })
            }
            _ => Err(LatencySpecError::UnknownKind(spec.to_string())),
        }
    }
}

impl fmt::Display for LatencyDist {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LatencyDist::Fixed(d) => write!(f, "fixed:{}ns", d.as_nanos()),
            LatencyDist::Uniform { low, high } => {
                write!(f, "uniform:{}ns-{}ns", low.as_nanos(), high.as_nanos())
            }
            LatencyDist::LogNormal { median, p99 } => write!(
                f,
                "lognormal:median={}ns,p99={}ns",
                median.as_nanos(),
                p99.as_nanos()
            ),
        }
    }
}

/// z-score of the 99th percentile of the standard normal distribution.
const Z_P99: f64 = 2.326_347_874;

impl LatencyDist {
    /// Draws one delay.
    pub fn sample(&self, rng: &mut Rng) -> Duration {
        let ns = match *self {
            LatencyDist::Fixed(d) => return d,
            LatencyDist::Uniform { low, high } => {
                rng.range(low.as_nanos() as u64, high.as_nanos() as u64) as f64
            }
            LatencyDist::LogNormal { median, p99 } => {
                let mu = (median.as_nanos() as f64).ln();
                let sigma = ((p99.as_nanos() as f64).ln() - mu) / Z_P99;
                (mu + sigma * rng.normal()).exp()
            }
        };
        Duration::from_nanos(ns.min(LATENCY_MAX.as_nanos() as f64) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_all_forms() {
        assert_eq!(
            "fixed:200us".parse(),
            Ok(LatencyDist::Fixed(Duration::from_micros(200)))
        );
        assert_eq!(
            "uniform:50us-2ms".parse(),
            Ok(LatencyDist::Uniform {
                low: Duration::from_micros(50),
                high: Duration::from_millis(2)
            })
        );
        assert_eq!(
            "lognormal:median=300us,p99=5ms".parse(),
            Ok(LatencyDist::LogNormal {
                median: Duration::from_micros(300),
                p99: Duration::from_millis(5)
            })
        );
        assert_eq!(
            "fixed:1.5s".parse(),
            Ok(LatencyDist::Fixed(Duration::from_millis(1500)))
        );
        assert_eq!(
            "fixed:7ns".parse(),
            Ok(LatencyDist::Fixed(Duration::from_nanos(7)))
        );
        for bad in [
            "fixed:200",
            "fixed:2h",
            "uniform:2ms-1ms",
            "lognormal:median=1ms",
            "lognormal:median=5ms,p99=1ms",
            "gamma:1ms",
            "fixed:-1ms",
            "fixed:100s",
        ] {
            assert!(bad.parse::<LatencyDist>().is_err(), "{bad}");
        }
    }

    #[test]
    fn lognormal_matches_its_median_and_p99() {
        let dist: LatencyDist = "lognormal:median=300us,p99=5ms".parse().unwrap();
        let mut rng = Rng::new(3);
        let mut v: Vec<Duration> = (0..100_000).map(|_| dist.sample(&mut rng)).collect();
        v.sort();
        let median = v[50_000].as_micros() as f64;
        let p99 = v[99_000].as_micros() as f64;
        assert!((270.0..330.0).contains(&median), "median {median}us");
        assert!((4000.0..6000.0).contains(&p99), "p99 {p99}us");
    }

    #[test]
    fn uniform_stays_in_range() {
        let dist: LatencyDist = "uniform:50us-2ms".parse().unwrap();
        let mut rng = Rng::new(1);
        for _ in 0..10_000 {
            let d = dist.sample(&mut rng);
            assert!(d >= Duration::from_micros(50) && d <= Duration::from_millis(2));
        }
    }
}
