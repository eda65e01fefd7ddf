//! The deterministic, messy portal generator.
//!
//! A record stores only its id and timestamps; every generated value is a pure function of
//! `(seed, object type, id, property name)`, so the same seed always serves the same portal and
//! a million records cost a few hundred bytes each. So is the history of versions that led to
//! each generated value (`seeded_history`), computed only when asked for.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::catalogue::{
    listed_properties, Links, ListedProperty, ObjectKind, PipelineRow, ASSOCIATIONS, ROLLUPS, SEARCHABLE_PHONES, TYPES,
};
use super::portal::{
    AssociationType, Millis, ObjectStore, ObjectTypeDef, Owner, Pipeline, PipelineStage, Portal, PropSource,
    PropertyDef, PropertySet, Record, SearchIndex, Sensitivity, TypeIdx, ValueContext, Version, WriteSource,
    API_APP_ID,
};

/// 2026-01-01T00:00:00Z: generated history ends here, so output never depends on the wall clock.
pub const ANCHOR_MS: Millis = 1_767_225_600_000;
/// The shared last-modified millisecond of the generated bulk update (2025-12-25T00:00:00.123Z).
pub const BULK_UPDATE_MS: Millis = ANCHOR_MS - 7 * 86_400_000 + 123;
const YEAR_MS: Millis = 365 * 86_400_000;

/// Type indexes of the original five types in [`Portal::types`] (the catalogue's first rows),
/// which their hand-written association generator uses.
pub const CONTACTS: TypeIdx = 0;
pub const COMPANIES: TypeIdx = 1;
pub const DEALS: TypeIdx = 2;
pub const TICKETS: TypeIdx = 3;
/// The generated custom object (`cars`).
pub const CARS: TypeIdx = 4;

/// How a generated property's values are made.
#[derive(Clone, Debug, PartialEq)]
pub enum GenKind {
    FirstName,
    LastName,
    Email,
    Phone,
    CompanyName,
    Domain,
    City,
    Country,
    JobTitle,
    Sentence,
    LongText,
    UnicodeText,
    Integer(i64),
    Money,
    BigDecimal,
    Bool,
    Date,
    DateTime,
    /// Pick from the definition's options; `true` for multi-select (`a;b`).
    Choice(bool),
    Owner,
    Pipeline,
    Stage,
    Vin,
    /// A 16-hex-digit key (SKUs, external ids, URL keys).
    Key,
    /// The id of one of the generated products (`hs_product_id` of line items).
    ProductId,
    /// `quantity` × `price` of the same record.
    LineAmount,
}

/// What to generate.
#[derive(Clone, Debug)]
pub struct PortalSpec {
    pub seed: u64,
    pub portal_id: u64,
    pub contacts: u64,
    pub companies: u64,
    pub deals: u64,
    pub tickets: u64,
    pub cars: u64,
    /// Records of every further catalogue type, by path name (`calls`, `line_items`, ...). A
    /// type left out has none; [`PortalSpec::catalogue_counts`] gives the defaults.
    pub objects: BTreeMap<String, u64>,
    pub custom_properties: usize,
    /// Whether the standard objects list HubSpot's own properties as a real portal does
    /// (hundreds, most without a value; `data/hubspot-properties.tsv`). On by default; off
    /// leaves the generated ones, the rollups and the sensitive property, for scenarios about
    /// record counts rather than width (a warehouse emulator slows with every column).
    pub hubspot_catalogue: bool,
    /// Share of records, in thousandths, whose last-modified time is the bulk-update millisecond.
    pub bulk_update_permille: u64,
    pub index_lag_ms: Millis,
    pub association_page_size: usize,
}

impl Default for PortalSpec {
    fn default() -> Self {
        PortalSpec {
            seed: 42,
            portal_id: 62_515,
            contacts: 1_000,
            companies: 200,
            deals: 300,
            tickets: 100,
            cars: 50,
            objects: PortalSpec::catalogue_counts(1_000),
            custom_properties: 20,
            hubspot_catalogue: true,
            bulk_update_permille: 150,
            index_lag_ms: 0,
            association_page_size: 100,
        }
    }
}

impl PortalSpec {
    /// The portal `hsync demo` serves: a few thousand records of every type, small enough to
    /// sync in seconds on two cores.
    pub fn demo() -> PortalSpec {
        PortalSpec {
            contacts: 3_000,
            companies: 600,
            deals: 900,
            tickets: 300,
            cars: 150,
            objects: PortalSpec::catalogue_counts(3_000),
            ..PortalSpec::default()
        }
    }

    /// The catalogue's default record counts of every type beyond the original five in a
    /// portal of `contacts` contacts.
    pub fn catalogue_counts(contacts: u64) -> BTreeMap<String, u64> {
        TYPES.iter().filter_map(|k| Some((k.name.to_owned(), k.default_count(contacts)?))).collect()
    }

    /// How many records of `kind` to generate.
    fn count(&self, kind: &ObjectKind) -> u64 {
        match kind.name {
            "contacts" => self.contacts,
            "companies" => self.companies,
            "deals" => self.deals,
            "tickets" => self.tickets,
            "cars" => self.cars,
            name => self.objects.get(name).copied().unwrap_or(0),
        }
    }
}

fn mix(parts: &[u64]) -> u64 {
    // FNV-1a over the parts' bytes, then a final avalanche: stable across platforms and versions.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in p.to_le_bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    super::portal::tie_key(h)
}

fn name_hash(name: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

fn rng_for(seed: u64, t: TypeIdx, id: u64, salt: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(mix(&[seed, t as u64, id, salt]))
}

const FIRST_NAMES: &[&str] = &[
    "Ana",
    "José",
    "Zoë",
    "Łukasz",
    "李",
    "Søren",
    "O'Brien",
    "Nguyễn",
    "Ævar",
    "Émilie",
    "Mary-Jane",
    "Ольга",
    "محمد",
    "Björk",
    "Chloé",
    "Kwame",
    "Ingrid",
    "🚀 Rocket",
    "Dmitri",
    "Aiko",
];
const LAST_NAMES: &[&str] = &[
    "Smith",
    "García",
    "Müller",
    "Ñúñez",
    "王",
    "O'Connor",
    "Dvořák",
    "Kowalski",
    "Ødegaard",
    "van der Berg",
    "Schrödinger",
    "Иванов",
    "Tanaka",
    "Okafor",
    "Lefèvre",
    "\"Quoted\"",
    "Back\\slash",
];
const COMPANY_WORDS: &[&str] = &[
    "Acme",
    "Globex",
    "Initech",
    "Umbrella",
    "Hooli",
    "Vandelay",
    "Stark",
    "Wayne",
    "Tyrell",
    "Cyberdyne",
    "Soylent",
    "Wonka",
    "Müller & Söhne",
    "株式会社",
    "Ørsted",
];
const CITIES: &[&str] = &["Berlin", "São Paulo", "Zürich", "Kraków", "東京", "Reykjavík", "Boston", "Lagos"];
const COUNTRIES: &[&str] =
    &["Germany", "Brazil", "Switzerland", "Poland", "Japan", "Iceland", "United States", "Nigeria"];
const TITLES: &[&str] = &["CEO", "VP Sales", "Data Engineer", "Head of RevOps", "Analyst", "Founder & CTO"];
const WORDS: &[&str] = &[
    "lorem",
    "ipsum",
    "dolor",
    "sit",
    "amet",
    "naïve",
    "café",
    "résumé",
    "über",
    "日本語",
    "🎉",
    "tab\there",
    "line\nbreak",
    "comma,separated",
    "semi;colon",
    "quote\"d",
    "back\\slash",
];

fn pick<'a>(rng: &mut ChaCha8Rng, list: &[&'a str]) -> &'a str {
    list[rng.random_range(0..list.len())]
}

fn sentence(rng: &mut ChaCha8Rng, words: usize) -> String {
    (0..words).map(|_| pick(rng, WORDS)).collect::<Vec<_>>().join(" ")
}

/// The generated value of `prop` on record `id`, or `None` when the record has no value.
pub fn value(ctx: &ValueContext, kind: &GenKind, id: u64, prop: &PropertyDef) -> Option<String> {
    draw(ctx, kind, id, prop, &mut rng_for(ctx.seed, ctx.type_idx, id, name_hash(&prop.name)))
}

/// The pipeline of record `id`, with the random stream its stage is drawn from next.
fn chosen_pipeline(ctx: &ValueContext, id: u64) -> Option<(&'static PipelineRow, ChaCha8Rng)> {
    // Pipeline and stage come from one draw so they stay consistent. The first pipeline takes
    // three quarters of the records when there is a second.
    let mut pipe_rng = rng_for(ctx.seed, ctx.type_idx, id, name_hash("pipeline"));
    let pipelines = ctx.pipelines;
    let chosen = match pipelines.len() {
        0 => return None,
        1 => &pipelines[0],
        _ if pipe_rng.random_range(0..4) == 0 => &pipelines[1],
        _ => &pipelines[0],
    };
    Some((chosen, pipe_rng))
}

/// A value of `prop` drawn from `rng` (the generated value when `rng` is the property's own
/// stream), or `None` for no value.
fn draw(ctx: &ValueContext, kind: &GenKind, id: u64, prop: &PropertyDef, rng: &mut ChaCha8Rng) -> Option<String> {
    let custom = !prop.hubspot_defined;
    let absent_permille = if custom { 300 } else { 40 };
    if rng.random_range(0..1000) < absent_permille {
        return None;
    }
    let stringy = matches!(
        kind,
        GenKind::Sentence | GenKind::LongText | GenKind::UnicodeText | GenKind::JobTitle | GenKind::City
    );
    if stringy && rng.random_range(0..100) < 5 {
        return Some(String::new());
    }
    Some(match kind {
        GenKind::FirstName => pick(rng, FIRST_NAMES).to_owned(),
        GenKind::LastName => pick(rng, LAST_NAMES).to_owned(),
        GenKind::Email => {
            if rng.random_range(0..100) < 3 {
                format!("shared{}@example.com", rng.random_range(0..20))
            } else {
                format!("person{id}@example.com")
            }
        }
        GenKind::Phone => format!(
            "+{} ({}) {}-{:04}",
            rng.random_range(1..99),
            rng.random_range(200..999),
            rng.random_range(200..999),
            rng.random_range(0..10_000)
        ),
        GenKind::CompanyName => format!("{} {}", pick(rng, COMPANY_WORDS), rng.random_range(1..5000)),
        GenKind::Domain => format!("company{id}.example.com"),
        GenKind::City => pick(rng, CITIES).to_owned(),
        GenKind::Country => pick(rng, COUNTRIES).to_owned(),
        GenKind::JobTitle => pick(rng, TITLES).to_owned(),
        GenKind::Sentence => {
            let n = rng.random_range(1..8);
            sentence(rng, n)
        }
        GenKind::LongText => {
            let n = rng.random_range(200..600);
            sentence(rng, n)
        }
        GenKind::UnicodeText => format!("{} {} ✓", pick(rng, FIRST_NAMES), pick(rng, WORDS)),
        GenKind::Integer(max) => rng.random_range(0..*max).to_string(),
        GenKind::Money => match rng.random_range(0..10) {
            0 => "0.1".to_owned(),
            1 => "12345678901234.56".to_owned(),
            _ => format!("{}.{:02}", rng.random_range(0..2_000_000), rng.random_range(0..100)),
        },
        GenKind::BigDecimal => match rng.random_range(0..4) {
            0 => "123456789012345678901234.567890".to_owned(),
            1 => format!("-{}.{}", rng.random_range(0..1_000_000u64), rng.random_range(0..1_000_000_000u64)),
            2 => "0.000000000000000001".to_owned(),
            _ => format!("{}", rng.random_range(0..u64::MAX / 2)),
        },
        GenKind::Bool => if rng.random_bool(0.5) { "true" } else { "false" }.to_owned(),
        GenKind::Date => {
            let day = ANCHOR_MS / 86_400_000 - rng.random_range(0..3650);
            super::portal::iso_millis(day * 86_400_000)[..10].to_owned()
        }
        GenKind::DateTime => {
            let mut ms = ANCHOR_MS - rng.random_range(0..3 * YEAR_MS);
            if rng.random_range(0..10) == 0 {
                ms -= ms.rem_euclid(1000);
            }
            super::portal::iso_millis(ms)
        }
        GenKind::Choice(multi) => {
            if prop.options.is_empty() {
                return None;
            }
            let first = &prop.options[rng.random_range(0..prop.options.len())].1;
            if *multi && rng.random_bool(0.5) {
                let second = &prop.options[rng.random_range(0..prop.options.len())].1;
                if second != first {
                    return Some(format!("{first};{second}"));
                }
            }
            first.clone()
        }
        GenKind::Owner => {
            if ctx.owner_ids.is_empty() {
                return None;
            }
            ctx.owner_ids[rng.random_range(0..ctx.owner_ids.len())].to_string()
        }
        GenKind::Pipeline | GenKind::Stage => {
            let (chosen, mut pipe_rng) = chosen_pipeline(ctx, id)?;
            if *kind == GenKind::Pipeline {
                chosen.id.to_owned()
            } else {
                chosen.stages[pipe_rng.random_range(0..chosen.stages.len())].0.to_owned()
            }
        }
        GenKind::Key => format!("{:016x}", rng.random::<u64>()),
        GenKind::ProductId => {
            if ctx.product_ids.is_empty() {
                return None;
            }
            ctx.product_ids[rng.random_range(0..ctx.product_ids.len())].to_string()
        }
        GenKind::LineAmount => {
            // Quantity times unit price, from the same record's generated values.
            let generated = |name: &str| {
                let def = ctx.properties.get(name)?;
                let PropSource::Generated(kind) = &def.source else { return None };
                value(ctx, kind, id, def)?.parse::<f64>().ok()
            };
            format!("{:.2}", generated("quantity")? * generated("price")?)
        }
        GenKind::Vin => format!("1HGCM{id:012}"),
    })
}

/// Salt of the random streams of seeded property histories, apart from the values' own streams.
const HISTORY_SALT: u64 = 0x0068_6973_746f_7279;
const DAY_MS: Millis = 86_400_000;
/// Apps whose integrations made some of the seeded versions.
const SEEDED_APP_IDS: [u64; 2] = [API_APP_ID, 2_718_281];

/// The versions `prop` had on seeded record `id`, newest first, ending in its generated value
/// (empty when it has none): the first at the record's creation `created` and none after its
/// generated last modification `updated`. A pipeline stage, and a contact's lifecycle stage,
/// moved forward through earlier open stages over days or weeks; other properties had one to
/// three values.
pub fn seeded_history(
    ctx: &ValueContext,
    kind: &GenKind,
    id: u64,
    created: Millis,
    updated: Millis,
    prop: &PropertyDef,
) -> Vec<Version> {
    let Some(current) = value(ctx, kind, id, prop) else {
        return Vec::new();
    };
    let salt = name_hash(&prop.name) ^ HISTORY_SALT;
    let mut rng = rng_for(ctx.seed, ctx.type_idx, id, salt);
    let (mut values, stepwise) = match kind {
        GenKind::Stage => (stage_path(ctx, id, &current, &mut rng), true),
        _ if prop.name == "lifecyclestage" => {
            let Some(k) = prop.options.iter().position(|(_, v)| *v == current) else {
                return vec![];
            };
            (forward_path(prop.options[..k].iter().map(|(_, v)| v.as_str()).collect(), &mut rng), true)
        }
        GenKind::Pipeline => (Vec::new(), false),
        _ => {
            let earlier = rng.random_range(0..3u64);
            let values = (1..=earlier)
                .filter_map(|k| {
                    let mut own = rng_for(ctx.seed, ctx.type_idx, id, salt.wrapping_add(k));
                    draw(ctx, kind, id, prop, &mut own)
                })
                .collect();
            (values, false)
        }
    };
    values.push(current);
    // A value set again to itself is no new version.
    values.dedup();
    let times = version_times(&mut rng, values.len(), created, updated, stepwise);
    let mut versions: Vec<Version> = values
        .into_iter()
        .zip(times)
        .map(|(value, at)| Version { value, at, source: seeded_source(ctx, &mut rng) })
        .collect();
    versions.reverse();
    versions
}

/// The open stages a record passed on its way to `current`, oldest first.
fn stage_path(ctx: &ValueContext, id: u64, current: &str, rng: &mut ChaCha8Rng) -> Vec<String> {
    let Some((pipeline, _)) = chosen_pipeline(ctx, id) else {
        return Vec::new();
    };
    let Some(k) = pipeline.stages.iter().position(|(stage, _, _)| *stage == current) else {
        return Vec::new();
    };
    let closed = |metadata: &[(&str, &str)]| {
        metadata.iter().any(|&(key, v)| (key == "isClosed" && v == "true") || (key == "ticketState" && v == "CLOSED"))
    };
    let open = pipeline.stages[..k].iter().filter(|(_, _, metadata)| !closed(metadata)).map(|(stage, _, _)| *stage);
    forward_path(open.collect(), rng)
}

/// Some of `earlier` stages in order: most records start at the first one, some entered later
/// (imported mid-funnel), and some stages were skipped.
fn forward_path(earlier: Vec<&str>, rng: &mut ChaCha8Rng) -> Vec<String> {
    if earlier.is_empty() {
        return Vec::new();
    }
    let start = if rng.random_bool(0.6) { 0 } else { rng.random_range(0..earlier.len()) };
    earlier[start..]
        .iter()
        .enumerate()
        .filter(|(i, _)| *i == 0 || rng.random_bool(0.7))
        .map(|(_, stage)| (*stage).to_owned())
        .collect()
}

/// `n` version times, oldest first: the first at `created`, the rest at most `updated`. Stage
/// moves are days or weeks apart, squeezed when the record's life is shorter.
fn version_times(rng: &mut ChaCha8Rng, n: usize, created: Millis, updated: Millis, stepwise: bool) -> Vec<Millis> {
    let span = (updated - created).max(0);
    let gaps: Vec<Millis> = (1..n)
        .map(|_| if stepwise { rng.random_range(DAY_MS..=21 * DAY_MS) } else { rng.random_range(0..=span) })
        .collect();
    let total: Millis = gaps.iter().sum();
    let mut at = created;
    let mut times = vec![created];
    for gap in gaps {
        // Scaling each gap down keeps their sum within the span.
        let gap = if total > span { (i128::from(gap) * i128::from(span) / i128::from(total)) as Millis } else { gap };
        at += gap;
        times.push(at);
    }
    times
}

/// Who made a seeded version: mostly a user, sometimes an integration.
fn seeded_source(ctx: &ValueContext, rng: &mut ChaCha8Rng) -> WriteSource {
    if ctx.user_ids.is_empty() || rng.random_range(0..4) == 0 {
        WriteSource::Integration(SEEDED_APP_IDS[rng.random_range(0..SEEDED_APP_IDS.len())])
    } else {
        WriteSource::User(ctx.user_ids[rng.random_range(0..ctx.user_ids.len())])
    }
}

/// Names that stress warehouse identifier handling: reserved words and a name longer than
/// Postgres's 63-byte identifier limit.
const AWKWARD_NAMES: &[&str] = &[
    "order",
    "user",
    "default",
    "select",
    "a_very_long_custom_property_name_that_goes_well_past_the_postgres_identifier_limit",
];

fn custom_properties(count: usize) -> Vec<PropertyDef> {
    let cycle: [(&str, &str, GenKind, &[&str]); 12] = [
        ("string", "text", GenKind::Sentence, &[]),
        ("number", "number", GenKind::Money, &[]),
        ("bool", "booleancheckbox", GenKind::Bool, &[]),
        ("date", "date", GenKind::Date, &[]),
        ("datetime", "date", GenKind::DateTime, &[]),
        ("enumeration", "select", GenKind::Choice(false), &["alpha", "beta", "gamma", "delta"]),
        ("enumeration", "checkbox", GenKind::Choice(true), &["red", "green", "blue", "yellow"]),
        ("phone_number", "phonenumber", GenKind::Phone, &[]),
        ("string", "textarea", GenKind::LongText, &[]),
        ("number", "number", GenKind::BigDecimal, &[]),
        ("number", "number", GenKind::Integer(1_000_000), &[]),
        ("string", "text", GenKind::UnicodeText, &[]),
    ];
    (0..count)
        .map(|i| {
            let (kind, field, gen_kind, options) = &cycle[i % cycle.len()];
            let name = AWKWARD_NAMES.get(i).map_or_else(|| format!("custom_prop_{i:04}"), |n| (*n).to_owned());
            PropertyDef {
                label: format!("Custom {kind} {i}"),
                name,
                kind: (*kind).to_owned(),
                field_type: (*field).to_owned(),
                group: "custom_properties".to_owned(),
                options: options.iter().map(|o| (o.to_uppercase(), (*o).to_owned())).collect(),
                calculated: false,
                unique: false,
                hidden: false,
                hubspot_defined: false,
                read_only: false,
                archived_at: None,
                created_at: ANCHOR_MS - YEAR_MS,
                updated_at: ANCHOR_MS - YEAR_MS,
                display_order: 0,
                source: PropSource::Generated(gen_kind.clone()),
                sensitivity: Sensitivity::NonSensitive,
            }
        })
        .collect()
}

fn type_defs(portal_id: u64) -> Vec<ObjectTypeDef> {
    TYPES
        .iter()
        .map(|kind| ObjectTypeDef {
            name: kind.name.to_owned(),
            type_id: kind.type_id.to_owned(),
            fully_qualified_name: kind.custom.then(|| format!("p{portal_id}_{}", kind.name)),
            singular: kind.singular.to_owned(),
            upper: kind.upper.to_owned(),
            cursor_property: kind.cursor,
            created_property: kind.created,
            default_properties: kind.defaults.to_vec(),
            custom: kind.custom,
            kind,
        })
        .collect()
}

/// HubSpot's own properties beyond the generated ones, after `first` others: the association
/// rollups (values kept by the portal), the searchable phone numbers (values derived from the
/// phone properties), the definitions a real portal lists (`catalogue::listed_properties`, no
/// values: most of HubSpot's own properties are empty on most records),
/// and on contacts one sensitive property (sensitive data is a setting of custom properties),
/// whose generated values are served only to a client that lists sensitive properties and asks
/// for it by name.
fn hubspot_listed_properties(def: &ObjectTypeDef, first: usize, listed: bool) -> Vec<PropertyDef> {
    let hubspot = |name: &str, label: &str, kind: &str, field: &str, group: &str, source: PropSource| PropertyDef {
        name: name.to_owned(),
        label: label.to_owned(),
        kind: kind.to_owned(),
        field_type: field.to_owned(),
        group: group.to_owned(),
        options: Vec::new(),
        calculated: false,
        unique: false,
        hidden: false,
        hubspot_defined: true,
        read_only: false,
        archived_at: None,
        created_at: ANCHOR_MS - 3 * YEAR_MS,
        updated_at: ANCHOR_MS - 3 * YEAR_MS,
        display_order: 0,
        source,
        sensitivity: Sensitivity::NonSensitive,
    };
    let generated: BTreeSet<&str> = standard_properties(def.kind).iter().map(|p| p.0).collect();
    let mut out: Vec<PropertyDef> = Vec::new();
    let taken = |name: &str, out: &[PropertyDef]| generated.contains(name) || out.iter().any(|p| p.name == name);
    let whole_catalogue = listed;
    let listed: Vec<ListedProperty> = listed_properties(&def.name).collect();
    let flagged = |row: &ListedProperty, source: PropSource| {
        let flag = |c: char| row.flags.contains(c);
        PropertyDef {
            calculated: flag('c'),
            unique: flag('u'),
            hidden: flag('h'),
            read_only: flag('r'),
            sensitivity: if flag('S') {
                Sensitivity::HighlySensitive
            } else if flag('s') {
                Sensitivity::Sensitive
            } else {
                Sensitivity::NonSensitive
            },
            ..hubspot(row.name, row.label, row.kind, row.field, row.group, source)
        }
    };
    for &(object, name, label, counted) in ROLLUPS {
        if object != def.name || !TYPES.iter().any(|k| k.name == counted) {
            continue;
        }
        let source = PropSource::AssociationCount(counted);
        // As a real portal lists it when the catalogue has it (captured rollups say
        // `calculated: false` or true, `readOnlyValue` always).
        let rollup = match listed.iter().find(|row| row.name == name) {
            Some(row) => flagged(row, source),
            None => {
                hubspot(name, label, "number", "calculation_rollup", &format!("{}information", def.singular), source)
            }
        };
        out.push(PropertyDef { read_only: true, ..rollup });
    }
    // The searchable phone numbers of the phone properties the type has; read-only and
    // calculated whatever a catalogue row says, since the portal derives their values.
    let has = |name: &str| generated.contains(name) || (whole_catalogue && listed.iter().any(|r| r.name == name));
    let mut phones: Vec<PropertyDef> = SEARCHABLE_PHONES
        .iter()
        .filter(|&&(object, _, _, phone)| object == def.name && has(phone))
        .map(|&(_, name, label, phone)| {
            let source = PropSource::SearchablePhone(phone);
            let calc = match listed.iter().find(|row| row.name == name) {
                Some(row) => flagged(row, source),
                None => hubspot(name, label, "string", "phonenumber", &format!("{}information", def.singular), source),
            };
            PropertyDef { calculated: true, read_only: true, ..calc }
        })
        .collect();
    for row in listed.iter().filter(|_| whole_catalogue) {
        if let Some(i) = phones.iter().position(|p| p.name == row.name) {
            // Where the catalogue lists it, as the rest of its rows.
            out.push(phones.remove(i));
        } else if !taken(row.name, &out) {
            out.push(flagged(row, PropSource::Stored));
        }
    }
    out.extend(phones);
    if def.name == "contacts" && !taken("health_notes", &out) {
        out.push(PropertyDef {
            hubspot_defined: false,
            sensitivity: Sensitivity::Sensitive,
            ..hubspot(
                "health_notes",
                "Health notes",
                "string",
                "textarea",
                "contactinformation",
                PropSource::Generated(GenKind::LongText),
            )
        });
    }
    for (i, p) in out.iter_mut().enumerate() {
        p.display_order = (first + i) as i64;
    }
    out
}

/// A property definition's name, label, type, field type, source and options.
type StandardProp = (&'static str, &'static str, &'static str, &'static str, PropSource, &'static [&'static str]);

/// The property definitions every type has, then the catalogue's generated ones.
fn standard_properties(kind: &ObjectKind) -> Vec<StandardProp> {
    let mut props = vec![
        ("hs_object_id", "Record ID", "number", "number", PropSource::ObjectId, &[][..]),
        (kind.created, "Create Date", "datetime", "date", PropSource::CreatedAt, &[]),
        (kind.cursor, "Last Modified Date", "datetime", "date", PropSource::UpdatedAt, &[]),
        ("hs_merged_object_ids", "Merged record IDs", "enumeration", "checkbox", PropSource::MergedIds, &[]),
    ];
    props.extend(
        kind.properties
            .iter()
            .map(|p| (p.name, p.label, p.kind, p.field, PropSource::Generated(p.gen.clone()), p.options)),
    );
    props
}

fn association_types() -> Vec<AssociationType> {
    let idx = |name: &str| {
        TYPES.iter().position(|k| k.name == name).expect("invariant: association rows name catalogue types")
    };
    let mut out = Vec::new();
    for &(from, to, unlabeled, inverse, labeled, _) in ASSOCIATIONS {
        let (from, to) = (idx(from), idx(to));
        let mut push = |from, to, type_id, inverse, category, label: Option<&str>, unlabeled| {
            out.push(AssociationType {
                from,
                to,
                type_id,
                category,
                label: label.map(str::to_owned),
                inverse,
                unlabeled,
            });
        };
        push(from, to, unlabeled, inverse, "HUBSPOT_DEFINED", None, true);
        push(to, from, inverse, unlabeled, "HUBSPOT_DEFINED", None, true);
        for &(type_id, inv, category, label) in labeled {
            push(from, to, type_id, inv, category, Some(label), false);
            // The inverse of a primary label has no label of its own in HubSpot's examples,
            // but a user-defined pair is labeled the same way from both sides.
            let inverse_label = (category == "USER_DEFINED").then_some(label);
            push(to, from, inv, type_id, category, inverse_label, false);
        }
    }
    out
}

/// Links records of the catalogue's association pairs beyond the original ones, with an RNG
/// of their own so the original pairs' edges stay as they were.
fn generate_catalogue_associations(portal: &mut Portal, seed: u64, ids: &[Vec<u64>]) {
    let mut rng = rng_for(seed, 97, 0, name_hash("catalogue associations"));
    for &(from, to, _, _, labeled, links) in ASSOCIATIONS {
        let Links::Percent(percent) = links else { continue };
        let (Some(from), Some(to)) = (portal.type_idx(from), portal.type_idx(to)) else { continue };
        let targets = &ids[to];
        if targets.is_empty() {
            continue;
        }
        for &id in &ids[from] {
            if rng.random_range(0..100) >= percent {
                continue;
            }
            let to_id = targets[rng.random_range(0..targets.len())];
            let chosen: Vec<u32> = labeled.iter().map(|l| l.0).filter(|_| rng.random_range(0..100) < 50).collect();
            portal.associate(from, id, to, to_id, &chosen).expect("invariant: catalogue association types exist");
        }
    }
}

/// Teams owners belong to: `(id, name)`.
const TEAMS: [(u64, &str); 3] = [(301, "Sales EMEA"), (302, "Support"), (303, "Équipe Nord")];

fn owners(seed: u64) -> Vec<Owner> {
    let mut rng = rng_for(seed, 99, 0, name_hash("owners"));
    (0..25)
        .map(|i| Owner {
            id: 10_000_001 + i,
            user_id: 5_000_001 + i,
            email: format!("owner{i}@example.com"),
            first_name: pick(&mut rng, FIRST_NAMES).to_owned(),
            last_name: pick(&mut rng, LAST_NAMES).to_owned(),
            // Most owners are in one team, a few in two, some in none.
            teams: match i % 5 {
                0 => Vec::new(),
                4 => vec![(TEAMS[0].0, TEAMS[0].1.to_owned(), true), (TEAMS[2].0, TEAMS[2].1.to_owned(), false)],
                n => {
                    let (id, name) = TEAMS[n as usize % TEAMS.len()];
                    vec![(id, name.to_owned(), true)]
                }
            },
            archived: i >= 23,
            created_at: ANCHOR_MS - 2 * YEAR_MS + i as Millis * 86_400_000,
            updated_at: ANCHOR_MS - YEAR_MS + i as Millis * 86_400_000,
        })
        .collect()
}

/// A stage created with the portal, its metadata given as pairs.
pub fn stage(id: &str, label: &str, display_order: i64, metadata: &[(&str, &str)]) -> PipelineStage {
    PipelineStage {
        id: id.to_owned(),
        label: label.to_owned(),
        display_order,
        archived: false,
        metadata: metadata.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
        created_at: ANCHOR_MS,
        updated_at: ANCHOR_MS,
    }
}

fn pipeline(id: &str, label: &str, display_order: i64, stages: Vec<PipelineStage>) -> Pipeline {
    Pipeline {
        id: id.to_owned(),
        label: label.to_owned(),
        display_order,
        archived: false,
        created_at: ANCHOR_MS,
        updated_at: ANCHOR_MS,
        stages,
    }
}

fn pipelines() -> HashMap<TypeIdx, Vec<Pipeline>> {
    TYPES
        .iter()
        .enumerate()
        .filter(|(_, kind)| kind.has_pipelines())
        .map(|(t, kind)| {
            let list = kind
                .pipelines
                .iter()
                .enumerate()
                .map(|(order, row)| {
                    let stages = row
                        .stages
                        .iter()
                        .enumerate()
                        .map(|(i, (id, label, metadata))| stage(id, label, i as i64, metadata))
                        .collect();
                    pipeline(row.id, row.label, order as i64, stages)
                })
                .collect();
            (t, list)
        })
        .collect()
}

/// Builds the portal for `spec`. The same spec always builds the same portal.
pub fn build(spec: &PortalSpec) -> Portal {
    let defs = type_defs(spec.portal_id);
    let owners = owners(spec.seed);
    let owner_ids: Vec<u64> = owners.iter().filter(|o| !o.archived).map(|o| o.id).collect();
    let user_ids: Vec<u64> = owners.iter().filter(|o| !o.archived).map(|o| o.user_id).collect();
    let mut next_id: u64 = 50;
    let mut types = Vec::new();
    let mut ids_by_type: Vec<Vec<u64>> = Vec::new();
    for (t, def) in defs.into_iter().enumerate() {
        let mut props: Vec<PropertyDef> = standard_properties(def.kind)
            .into_iter()
            .enumerate()
            .map(|(i, (name, label, kind, field, source, options))| PropertyDef {
                name: name.to_owned(),
                label: label.to_owned(),
                kind: kind.to_owned(),
                field_type: field.to_owned(),
                group: format!("{}information", def.singular),
                options: options.iter().map(|o| ((*o).to_owned(), (*o).to_owned())).collect(),
                calculated: false,
                unique: name == "hs_object_id" || name == "vin",
                hidden: false,
                hubspot_defined: !def.custom || name.starts_with("hs_"),
                read_only: !matches!(source, PropSource::Generated(_) | PropSource::Stored),
                archived_at: None,
                created_at: ANCHOR_MS - 3 * YEAR_MS,
                updated_at: ANCHOR_MS - 3 * YEAR_MS,
                display_order: i as i64,
                source,
                sensitivity: Sensitivity::NonSensitive,
            })
            .collect();
        props.extend(hubspot_listed_properties(&def, props.len(), spec.hubspot_catalogue));
        let base = props.len() as i64;
        props.extend(custom_properties(spec.custom_properties).into_iter().enumerate().map(|(i, mut p)| {
            p.display_order = base + i as i64;
            p
        }));
        let mut rng = rng_for(spec.seed, t, 0, name_hash("records"));
        let count = spec.count(def.kind);
        let mut live = BTreeMap::new();
        let mut ids = Vec::with_capacity(count as usize);
        let span = 3 * YEAR_MS - 30 * 86_400_000;
        for i in 0..count {
            next_id += rng.random_range(1..=3);
            let id = next_id;
            let created_at = ANCHOR_MS - 3 * YEAR_MS
                + (span as f64 * (i as f64 / count.max(1) as f64)) as Millis
                + rng.random_range(0..86_400_000);
            let updated_at = if mix(&[spec.seed, t as u64, id, 7]) % 1000 < spec.bulk_update_permille {
                BULK_UPDATE_MS.max(created_at)
            } else {
                created_at + rng.random_range(0..(ANCHOR_MS - created_at).max(1))
            };
            live.insert(
                id,
                Arc::new(Record {
                    id,
                    created_at,
                    updated_at,
                    archived_at: None,
                    written: BTreeMap::new(),
                    merged_ids: Vec::new(),
                    raw_json: BTreeMap::new(),
                    last_write: None,
                }),
            );
            ids.push(id);
        }
        let mut index = SearchIndex::default();
        for rec in live.values() {
            index.insert_unsorted(Arc::clone(rec));
        }
        types.push(ObjectStore {
            def,
            properties: Arc::new(PropertySet::new(props)),
            live,
            archived: BTreeMap::new(),
            merged_into: BTreeMap::new(),
            gdpr_deleted: Default::default(),
            index,
            replica: None,
        });
        ids_by_type.push(ids);
    }
    let product_ids = TYPES.iter().position(|k| k.name == "products").map(|t| ids_by_type[t].clone());
    let mut portal = Portal {
        portal_id: spec.portal_id,
        seed: spec.seed,
        types,
        association_types: association_types(),
        edges: HashMap::new(),
        owner_ids: Arc::new(owner_ids),
        owners: Arc::new(owners),
        pipelines: pipelines(),
        next_id: next_id + 1000,
        index_lag_ms: spec.index_lag_ms,
        replica_reads: 0,
        association_page_size: spec.association_page_size,
        product_ids: Arc::new(product_ids.unwrap_or_default()),
        user_ids: Arc::new(user_ids),
        changes: None,
    };
    generate_associations(&mut portal, spec.seed, &ids_by_type);
    generate_catalogue_associations(&mut portal, spec.seed, &ids_by_type);
    portal.seed_rollups();
    portal
}

fn generate_associations(portal: &mut Portal, seed: u64, ids: &[Vec<u64>]) {
    let mut rng = rng_for(seed, 98, 0, name_hash("associations"));
    let link = |portal: &mut Portal, rng: &mut ChaCha8Rng, from: TypeIdx, from_id: u64, to: TypeIdx, labels: &[u32]| {
        let targets = &ids[to];
        if targets.is_empty() {
            return;
        }
        let to_id = targets[rng.random_range(0..targets.len())];
        let chosen: Vec<u32> = labels.iter().copied().filter(|_| rng.random_range(0..100) < 20).collect();
        portal.associate(from, from_id, to, to_id, &chosen).expect("invariant: generated association types exist");
    };
    for &id in &ids[CONTACTS] {
        if rng.random_range(0..100) < 85 {
            link(portal, &mut rng, CONTACTS, id, COMPANIES, &[1, 28]);
        }
        if rng.random_range(0..100) < 10 {
            link(portal, &mut rng, CONTACTS, id, COMPANIES, &[28]);
        }
    }
    for &id in &ids[DEALS] {
        link(portal, &mut rng, DEALS, id, COMPANIES, &[5]);
        let contacts = &ids[CONTACTS];
        if contacts.is_empty() {
            continue;
        }
        for _ in 0..rng.random_range(0..4) {
            let c = contacts[rng.random_range(0..contacts.len())];
            let labels: Vec<u32> = if rng.random_range(0..100) < 15 { vec![30] } else { vec![] };
            portal.associate(CONTACTS, c, DEALS, id, &labels).expect("invariant: type exists");
        }
    }
    for &id in &ids[TICKETS] {
        link(portal, &mut rng, TICKETS, id, COMPANIES, &[26]);
        let contacts = &ids[CONTACTS];
        if !contacts.is_empty() {
            let c = contacts[rng.random_range(0..contacts.len())];
            portal.associate(CONTACTS, c, TICKETS, id, &[]).expect("invariant: type exists");
        }
        if rng.random_range(0..100) < 30 {
            link(portal, &mut rng, TICKETS, id, DEALS, &[]);
        }
    }
    for &id in &ids[CARS] {
        link(portal, &mut rng, CARS, id, CONTACTS, &[119]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_builds_same_values_and_different_seed_differs() {
        let spec = PortalSpec { contacts: 50, ..PortalSpec::default() };
        let a = build(&spec);
        let b = build(&spec);
        let c = build(&PortalSpec { seed: 7, ..spec });
        let render = |p: &Portal| {
            let ctx = p.value_context(CONTACTS);
            p.types[CONTACTS]
                .live
                .values()
                .flat_map(|r| {
                    ctx.properties.defs.iter().map(|d| ctx.value(r, d).map(|v| v.into_owned())).collect::<Vec<_>>()
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(render(&a), render(&b));
        assert_ne!(render(&a), render(&c));
    }

    #[test]
    fn bulk_update_shares_one_millisecond() {
        let p = build(&PortalSpec { contacts: 2_000, bulk_update_permille: 500, ..PortalSpec::default() });
        let shared = p.types[CONTACTS].live.values().filter(|r| r.updated_at == BULK_UPDATE_MS).count();
        assert!((800..=1200).contains(&shared), "about half share the bulk millisecond, got {shared}");
    }

    /// Every seeded history of `t`'s property `name` in `portal`, with its record.
    fn histories<'a>(portal: &'a Portal, t: TypeIdx, name: &str) -> Vec<(&'a Record, Vec<Version>)> {
        let ctx = portal.value_context(t);
        let def = ctx.properties.get(name).unwrap().clone();
        let PropSource::Generated(kind) = &def.source else { panic!("{name} is generated") };
        portal.types[t]
            .live
            .values()
            .map(|r| (&**r, seeded_history(&ctx, kind, r.id, r.created_at, r.updated_at, &def)))
            .collect()
    }

    fn by_id(histories: Vec<(&Record, Vec<Version>)>) -> Vec<(u64, Vec<Version>)> {
        histories.into_iter().map(|(r, v)| (r.id, v)).collect()
    }

    #[test]
    fn seeded_histories_are_deterministic_and_end_in_the_current_value_within_the_records_life() {
        let spec = PortalSpec { contacts: 200, deals: 200, tickets: 100, ..PortalSpec::default() };
        let (a, b) = (build(&spec), build(&spec));
        for (t, name) in [
            (DEALS, "dealstage"),
            (DEALS, "amount"),
            (TICKETS, "hs_pipeline_stage"),
            (CONTACTS, "lifecyclestage"),
            (CONTACTS, "email"),
            (CARS, "vin"),
        ] {
            let ctx = a.value_context(t);
            let def = ctx.properties.get(name).unwrap();
            assert_eq!(by_id(histories(&a, t, name)), by_id(histories(&b, t, name)), "{name}: same seed, same history");
            for (rec, versions) in histories(&a, t, name) {
                let current = ctx.value(rec, def).map(|v| v.into_owned());
                assert_eq!(
                    versions.first().map(|v| v.value.clone()),
                    current,
                    "{name} of {}: newest is current",
                    rec.id
                );
                assert!(versions.len() <= 7, "{name}: {versions:?}");
                assert!(versions.windows(2).all(|w| w[0].at >= w[1].at), "{name}: newest first: {versions:?}");
                if let Some(oldest) = versions.last() {
                    assert_eq!(oldest.at, rec.created_at, "{name}: the first version is the creation");
                }
                assert!(
                    versions.iter().all(|v| (rec.created_at..=rec.updated_at).contains(&v.at)),
                    "{name}: {versions:?}"
                );
                assert!(versions.iter().all(|v| v.source != WriteSource::Calculated));
            }
        }
        let other = build(&PortalSpec { seed: 7, ..spec });
        assert_ne!(by_id(histories(&a, DEALS, "dealstage")), by_id(histories(&other, DEALS, "dealstage")));
    }

    #[test]
    fn seeded_stages_move_forward_through_earlier_open_stages() {
        let portal = build(&PortalSpec { deals: 300, contacts: 300, ..PortalSpec::default() });
        let deals = histories(&portal, DEALS, "dealstage");
        let moved = deals.iter().filter(|(_, v)| v.len() >= 3).count();
        assert!(moved > 30, "many deals went through several stages ({moved} of {})", deals.len());
        for (_, versions) in deals.iter().filter(|(_, v)| !v.is_empty()) {
            let pipeline = TYPES[DEALS]
                .pipelines
                .iter()
                .find(|p| p.stages.iter().any(|s| s.0 == versions[0].value))
                .expect("a stage of a generated pipeline");
            let order = |v: &Version| pipeline.stages.iter().position(|s| s.0 == v.value).expect("same pipeline");
            let oldest_first: Vec<usize> = versions.iter().rev().map(order).collect();
            assert!(oldest_first.windows(2).all(|w| w[0] < w[1]), "stages only move forward: {versions:?}");
            for earlier in &versions[1..] {
                let meta = pipeline.stages[order(earlier)].2;
                assert!(!meta.contains(&("isClosed", "true")), "no closed stage before the last: {versions:?}");
            }
            for pair in versions.windows(2).filter(|w| w[0].at > w[1].at) {
                assert!(pair[0].at - pair[1].at <= 21 * DAY_MS, "stage moves are days or weeks apart");
            }
        }
        let contacts = histories(&portal, CONTACTS, "lifecyclestage");
        let options = &portal.types[CONTACTS].properties.get("lifecyclestage").unwrap().options;
        for (_, versions) in &contacts {
            let order = |v: &Version| options.iter().position(|o| o.1 == v.value).unwrap();
            let oldest_first: Vec<usize> = versions.iter().rev().map(order).collect();
            assert!(oldest_first.windows(2).all(|w| w[0] < w[1]), "lifecycle stages only move forward: {versions:?}");
        }
        assert!(contacts.iter().any(|(_, v)| v.len() >= 3));
    }

    #[test]
    fn iso_millis_drops_zero_fraction_like_java_instant() {
        assert_eq!(super::super::portal::iso_millis(BULK_UPDATE_MS), "2025-12-25T00:00:00.123Z");
        assert_eq!(super::super::portal::iso_millis(ANCHOR_MS), "2026-01-01T00:00:00Z");
    }
}
