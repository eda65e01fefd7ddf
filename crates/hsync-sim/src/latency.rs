//! The latency model: how long the simulator holds an answer before sending it, per endpoint
//! family (search, list, batch, associations, other). A delay is the family's median times a
//! log-normal factor, plus a cost per result the answer returns, drawn from a generator seeded
//! from the portal seed so that a run can be repeated. It is off by default (every delay zero),
//! so tests and benchmarks run at full speed; `hsync sim --latency-ms` and `PUT /_sim/latency`
//! turn it on.

use axum::response::Response;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// The header that tells a client how long the latency model held its answer (simulator only;
/// HubSpot sends nothing like it).
pub const LATENCY_HEADER: &str = "x-sim-latency-ms";

/// Draws beyond this many standard deviations are clamped, so that a delay stays within
/// `median × e^(±4σ)` plus the per-result cost.
const MAX_Z: f64 = 4.0;

/// Bounds that keep a setting meaningful; anything outside is a 400.
const MAX_MEDIAN_MS: f64 = 600_000.0;
const MAX_JITTER: f64 = 3.0;
const MAX_PER_RECORD_MS: f64 = 10_000.0;

/// Which kind of endpoint a request is, for its latency.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// `POST .../search`.
    Search,
    /// List pages and single-record GETs.
    List,
    /// Object batch read, create, update, upsert and archive.
    Batch,
    /// Associations v4: batch endpoints, labels, and a record's associations.
    Associations,
    /// Everything else: properties, pipelines, owners, schemas, single-record writes.
    Other,
}

/// The latency of one endpoint family.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FamilyLatency {
    /// The median delay in milliseconds, before the per-result cost.
    pub median_ms: f64,
    /// The spread: sigma of the log-normal factor the median is multiplied by (0: always the
    /// median; 0.3: about two thirds of delays within ±35% of it).
    pub jitter: f64,
    /// Milliseconds added per result the answer returns (records of a page or batch, inputs of
    /// an association batch read), so that larger pages are slower.
    pub per_record_ms: f64,
}

impl FamilyLatency {
    fn is_off(&self) -> bool {
        self.median_ms == 0.0 && self.per_record_ms == 0.0
    }

    fn validate(&self, family: &str) -> Result<(), String> {
        let check = |field: &str, value: f64, max: f64| {
            if value.is_finite() && (0.0..=max).contains(&value) {
                Ok(())
            } else {
                Err(format!("{family}.{field} must be a number from 0 to {max}, got {value}"))
            }
        };
        check("median_ms", self.median_ms, MAX_MEDIAN_MS)?;
        check("jitter", self.jitter, MAX_JITTER)?;
        check("per_record_ms", self.per_record_ms, MAX_PER_RECORD_MS)
    }
}

/// The latency of every family; the default is zero everywhere (off).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LatencySettings {
    pub search: FamilyLatency,
    pub list: FamilyLatency,
    pub batch: FamilyLatency,
    pub associations: FamilyLatency,
    pub other: FamilyLatency,
}

impl LatencySettings {
    /// A realistic profile scaled to a search median: list pages 0.8×, batch and association
    /// calls 0.7×, everything else 0.5× of it, all with the same `jitter`. Records cost 0.2% of
    /// the search median each on search, list and batch pages (0.6 ms at 300 ms: a search page
    /// of 200 adds 120 ms), association results 0.05%.
    pub fn realistic(search_median_ms: f64, jitter: f64) -> LatencySettings {
        // Tenths and ten-thousandths of the search median, so that round medians give round
        // settings (300 gives 240, not 240.00000000000003).
        let family = |tenths: f64, per_record_per_10k: f64| FamilyLatency {
            median_ms: search_median_ms * tenths / 10.0,
            jitter,
            per_record_ms: search_median_ms * per_record_per_10k / 10_000.0,
        };
        LatencySettings {
            search: family(10.0, 20.0),
            list: family(8.0, 20.0),
            batch: family(7.0, 20.0),
            associations: family(7.0, 5.0),
            other: family(5.0, 0.0),
        }
    }

    pub fn family(&self, family: Family) -> &FamilyLatency {
        match family {
            Family::Search => &self.search,
            Family::List => &self.list,
            Family::Batch => &self.batch,
            Family::Associations => &self.associations,
            Family::Other => &self.other,
        }
    }

    /// Checks every value is finite and within its bounds; the error names the field.
    pub fn validate(&self) -> Result<(), String> {
        self.search.validate("search")?;
        self.list.validate("list")?;
        self.batch.validate("batch")?;
        self.associations.validate("associations")?;
        self.other.validate("other")
    }
}

/// How many results an answer returned, set by the handlers that return records.
#[derive(Clone, Copy, Debug)]
pub struct ResultCount(pub usize);

/// `resp` marked with how many results it returns.
pub fn counted(mut resp: Response, results: usize) -> Response {
    resp.extensions_mut().insert(ResultCount(results));
    resp
}

/// The settings in force and the generator delays are drawn from.
#[derive(Debug)]
pub struct LatencyModel {
    pub settings: LatencySettings,
    rng: ChaCha8Rng,
}

impl LatencyModel {
    pub fn new(seed: u64, settings: LatencySettings) -> LatencyModel {
        LatencyModel { settings, rng: ChaCha8Rng::seed_from_u64(seed ^ 0x1A7E_0C4E) }
    }

    /// The delay in milliseconds for an answer of `family` with `results` results.
    pub fn draw(&mut self, family: Family, results: usize) -> u64 {
        let f = *self.settings.family(family);
        if f.is_off() {
            // No draw either: turning one family on does not change another's sequence.
            return 0;
        }
        let factor = if f.jitter > 0.0 { (f.jitter * self.standard_normal().clamp(-MAX_Z, MAX_Z)).exp() } else { 1.0 };
        let ms = f.median_ms * factor + f.per_record_ms * results as f64;
        ms.round() as u64
    }

    /// A standard normal draw (Box-Muller).
    fn standard_normal(&mut self) -> f64 {
        // `1 - [0, 1)` is in (0, 1], so the logarithm is finite.
        let u1 = 1.0 - self.rng.random::<f64>();
        let u2 = self.rng.random::<f64>();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_by_default_draws_zero() {
        let mut model = LatencyModel::new(7, LatencySettings::default());
        for family in [Family::Search, Family::List, Family::Batch, Family::Associations, Family::Other] {
            assert_eq!(model.draw(family, 200), 0);
        }
    }

    #[test]
    fn draws_are_reproducible_and_within_four_sigma() {
        let settings = LatencySettings::realistic(300.0, 0.3);
        let mut a = LatencyModel::new(7, settings.clone());
        let mut b = LatencyModel::new(7, settings);
        let draws: Vec<u64> = (0..2_000).map(|_| a.draw(Family::Search, 200)).collect();
        assert_eq!(draws, (0..2_000).map(|_| b.draw(Family::Search, 200)).collect::<Vec<_>>());
        let (lo, hi) = (300.0 * (-1.2f64).exp() + 120.0, 300.0 * 1.2f64.exp() + 120.0);
        assert!(draws.iter().all(|&d| (lo.floor() as u64..=hi.ceil() as u64).contains(&d)), "{lo}..{hi}");
        let mut sorted = draws;
        sorted.sort_unstable();
        let median = sorted[sorted.len() / 2];
        assert!((400..=440).contains(&median), "median {median} is near 300 + 120 for 200 records");
    }

    #[test]
    fn zero_jitter_is_exact_and_records_add_their_cost() {
        let flat = FamilyLatency { median_ms: 50.0, jitter: 0.0, per_record_ms: 0.5 };
        let mut model = LatencyModel::new(1, LatencySettings { list: flat, ..LatencySettings::default() });
        assert_eq!(model.draw(Family::List, 0), 50);
        assert_eq!(model.draw(Family::List, 100), 100);
        assert_eq!(model.draw(Family::Search, 100), 0, "other families stay off");
    }

    #[test]
    fn validation_names_the_bad_field() {
        let bad = LatencySettings {
            batch: FamilyLatency { median_ms: -1.0, ..FamilyLatency::default() },
            ..LatencySettings::default()
        };
        assert!(bad.validate().unwrap_err().starts_with("batch.median_ms"));
        let nan = LatencySettings {
            other: FamilyLatency { jitter: f64::NAN, ..FamilyLatency::default() },
            ..LatencySettings::default()
        };
        assert!(nan.validate().unwrap_err().starts_with("other.jitter"));
        assert!(LatencySettings::realistic(300.0, 0.3).validate().is_ok());
    }
}
