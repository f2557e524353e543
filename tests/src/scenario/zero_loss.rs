//! The zero-loss rate search: rising steps of offered rate until one loses a datagram, then
//! bisection between the last clean step and the first lossy one. A step is clean only if
//! every output of every stream delivered every datagram the generator sent. A step the
//! generator itself could not offer (it fell behind its schedule) ends the rise: no higher
//! rate can be tried on this machine.

use anyhow::Result;

use super::spec::ZeroLossSpec;

/// How one trial went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Every datagram delivered at the offered rate.
    Clean,
    /// Something lost.
    Lossy,
    /// The generator did not reach the rate (nothing is concluded about the relay).
    OutOfReach,
}

/// Where the search ended.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Outcome {
    /// Highest rate that was clean.
    pub max_clean: Option<f64>,
    /// Lowest rate that lost something.
    pub first_lossy: Option<f64>,
    /// Lowest rate the generator could not offer.
    pub out_of_reach: Option<f64>,
}

/// Searches with `trial(rate)`. Rates are rounded to whole datagrams per second.
pub fn search(
    spec: &ZeroLossSpec,
    mut trial: impl FnMut(f64) -> Result<Verdict>,
) -> Result<Outcome> {
    let mut out = Outcome {
        max_clean: None,
        first_lossy: None,
        out_of_reach: None,
    };
    let mut rate = spec.start_pps.round().max(1.0);
    loop {
        match trial(rate)? {
            Verdict::Clean => {
                out.max_clean = Some(rate);
                if rate >= spec.max_pps {
                    break;
                }
                rate = (rate * spec.factor).round().min(spec.max_pps);
            }
            Verdict::Lossy => {
                out.first_lossy = Some(rate);
                break;
            }
            Verdict::OutOfReach => {
                out.out_of_reach = Some(rate);
                break;
            }
        }
    }
    if let Some(bad) = out.first_lossy {
        let mut lo = out.max_clean.unwrap_or(0.0);
        let mut hi = bad;
        for _ in 0..spec.refine {
            let mid = ((lo + hi) / 2.0).round();
            if mid <= lo || mid >= hi || mid < 1.0 {
                break;
            }
            match trial(mid)? {
                Verdict::Clean => {
                    lo = mid;
                    out.max_clean = Some(mid);
                }
                Verdict::Lossy => {
                    hi = mid;
                    out.first_lossy = Some(mid);
                }
                // Nothing is known above what the generator can offer.
                Verdict::OutOfReach => {
                    hi = mid;
                    out.out_of_reach = Some(mid);
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::spec::ZeroLossCase;
    use crate::wanem::Dur;

    fn clean_up_to(rate: f64, limit: f64) -> Verdict {
        if rate <= limit {
            Verdict::Clean
        } else {
            Verdict::Lossy
        }
    }

    fn spec(start: f64, max: f64, refine: u32) -> ZeroLossSpec {
        ZeroLossSpec {
            cases: vec![ZeroLossCase {
                streams: 1,
                fanout: 1,
            }],
            size: 1024,
            step: Dur(std::time::Duration::from_secs(1)),
            start_pps: start,
            max_pps: max,
            factor: 2.0,
            refine,
            max_p99_latency: None,
        }
    }

    #[test]
    fn rises_then_bisects_to_the_limit() {
        // A relay that is clean up to 7000 pps.
        let mut tried = Vec::new();
        let out = search(&spec(1000.0, 100_000.0, 3), |r| {
            tried.push(r);
            Ok(clean_up_to(r, 7000.0))
        })
        .unwrap();
        assert_eq!(
            tried,
            [1000.0, 2000.0, 4000.0, 8000.0, 6000.0, 7000.0, 7500.0]
        );
        assert_eq!(out.max_clean, Some(7000.0));
        assert_eq!(out.first_lossy, Some(7500.0));
    }

    #[test]
    fn stops_at_the_maximum_when_everything_is_clean() {
        let mut n = 0;
        let out = search(&spec(1000.0, 5000.0, 3), |_| {
            n += 1;
            Ok(Verdict::Clean)
        })
        .unwrap();
        assert_eq!(out.max_clean, Some(5000.0));
        assert_eq!(out.first_lossy, None);
        assert_eq!(n, 4); // 1000, 2000, 4000, 5000
    }

    #[test]
    fn first_step_lossy_bisects_towards_zero() {
        let out = search(&spec(1000.0, 5000.0, 2), |r| Ok(clean_up_to(r, 300.0))).unwrap();
        // 500 lossy, 250 clean.
        assert_eq!(out.max_clean, Some(250.0));
        assert_eq!(out.first_lossy, Some(500.0));
        let none = search(&spec(1000.0, 5000.0, 0), |_| Ok(Verdict::Lossy)).unwrap();
        assert_eq!((none.max_clean, none.first_lossy), (None, Some(1000.0)));
    }

    #[test]
    fn a_rate_the_generator_cannot_reach_ends_the_rise() {
        let mut tried = Vec::new();
        let out = search(&spec(1000.0, 100_000.0, 3), |r| {
            tried.push(r);
            Ok(if r > 5000.0 {
                Verdict::OutOfReach
            } else {
                Verdict::Clean
            })
        })
        .unwrap();
        assert_eq!(tried, [1000.0, 2000.0, 4000.0, 8000.0]);
        assert_eq!(out.max_clean, Some(4000.0));
        assert_eq!((out.first_lossy, out.out_of_reach), (None, Some(8000.0)));
    }

    #[test]
    fn a_rate_out_of_reach_during_bisection_is_not_called_lossy() {
        // Lossy at 8000; 6000 cannot be offered; 5000 is clean.
        let out = search(&spec(1000.0, 100_000.0, 2), |r| {
            Ok(match r as u32 {
                8000 => Verdict::Lossy,
                6000 => Verdict::OutOfReach,
                _ => Verdict::Clean,
            })
        })
        .unwrap();
        assert_eq!(out.max_clean, Some(5000.0));
        assert_eq!(out.first_lossy, Some(8000.0));
        assert_eq!(out.out_of_reach, Some(6000.0));
    }

    #[test]
    fn trial_errors_stop_the_search() {
        assert!(search(&spec(1000.0, 5000.0, 2), |_| anyhow::bail!("sink died")).is_err());
    }
}
