//! What is compared with what: a source table and column matched to a target table and
//! column, with the domain each column is compared in.

use ferry_core::plan::TargetType;
use ferry_core::value::Affinity;

use crate::canon::{Ctx, Domain};

/// How a PostgreSQL column's binary values are decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PgKind {
    Bool,
    Int2,
    Int4,
    Int8,
    Float4,
    Float8,
    Numeric,
    Text,
    Bytea,
    Timestamp,
    Timestamptz,
    Date,
    Json,
    Jsonb,
    Uuid,
    Float4Array,
    /// pgvector's `vector`.
    Vector,
    Other,
}

impl PgKind {
    /// From the base type name (domains resolved) and, for arrays, the element type name.
    pub fn from_names(base: &str, elem: Option<&str>) -> PgKind {
        match (base, elem) {
            ("bool", _) => PgKind::Bool,
            ("int2", _) => PgKind::Int2,
            ("int4", _) => PgKind::Int4,
            ("int8", _) => PgKind::Int8,
            ("float4", _) => PgKind::Float4,
            ("float8", _) => PgKind::Float8,
            ("numeric", _) => PgKind::Numeric,
            ("text" | "varchar" | "bpchar" | "name" | "citext", _) => PgKind::Text,
            ("bytea", _) => PgKind::Bytea,
            ("timestamp", _) => PgKind::Timestamp,
            ("timestamptz", _) => PgKind::Timestamptz,
            ("date", _) => PgKind::Date,
            ("json", _) => PgKind::Json,
            ("jsonb", _) => PgKind::Jsonb,
            ("uuid", _) => PgKind::Uuid,
            ("vector", _) => PgKind::Vector,
            (_, Some("float4")) => PgKind::Float4Array,
            _ => PgKind::Other,
        }
    }

    /// The domain a column of this type is compared in when no plan says otherwise.
    pub fn default_domain(self) -> Domain {
        match self {
            PgKind::Bool => Domain::Boolean,
            PgKind::Int2 | PgKind::Int4 | PgKind::Int8 => Domain::Integer,
            PgKind::Float4 | PgKind::Float8 => Domain::Float,
            PgKind::Numeric => Domain::Numeric,
            PgKind::Text => Domain::Text,
            PgKind::Bytea => Domain::Bytes,
            PgKind::Timestamp | PgKind::Timestamptz => Domain::Timestamp,
            PgKind::Date => Domain::Date,
            PgKind::Json | PgKind::Jsonb => Domain::Json,
            PgKind::Uuid => Domain::Uuid,
            PgKind::Float4Array | PgKind::Vector => Domain::FloatArray,
            PgKind::Other => Domain::Unsupported,
        }
    }
}

/// The domain a plan's target type asks for, if the actual column type can hold it.
pub(crate) fn plan_domain(t: &TargetType, kind: PgKind) -> Option<Domain> {
    use PgKind as K;
    let (domain, ok) = match t {
        TargetType::Boolean => (Domain::BooleanOrText, kind == K::Bool),
        TargetType::Smallint | TargetType::Integer | TargetType::Bigint => {
            (Domain::Integer, matches!(kind, K::Int2 | K::Int4 | K::Int8))
        }
        TargetType::DoublePrecision => (Domain::Float, matches!(kind, K::Float4 | K::Float8)),
        TargetType::Numeric => (Domain::Numeric, kind == K::Numeric),
        TargetType::Text => (Domain::Text, kind == K::Text),
        TargetType::Bytea => (Domain::Bytes, kind == K::Bytea),
        TargetType::Date => (Domain::Date, kind == K::Date),
        TargetType::Timestamp | TargetType::Timestamptz => (
            Domain::Timestamp,
            matches!(kind, K::Timestamp | K::Timestamptz),
        ),
        TargetType::Json | TargetType::Jsonb => (Domain::Json, matches!(kind, K::Json | K::Jsonb)),
        TargetType::Uuid => (Domain::Uuid, kind == K::Uuid),
        TargetType::RealArray => (
            Domain::FloatArray,
            matches!(kind, K::Float4Array | K::Vector),
        ),
        TargetType::MixedJsonb => (Domain::Mixed, matches!(kind, K::Json | K::Jsonb)),
    };
    ok.then_some(domain)
}

/// One column pair.
#[derive(Debug, Clone)]
pub(crate) struct ColSpec {
    pub source: String,
    pub target: String,
    pub domain: Domain,
    pub pg: PgKind,
    pub pg_type: String,
    pub declared: String,
    pub affinity: Affinity,
}

/// One table pair, columns in hashing order: the key columns first (in key order), then
/// the others in source order.
#[derive(Debug, Clone)]
pub(crate) struct TableSpec {
    pub source: String,
    pub target: String,
    pub schema: String,
    pub cols: Vec<ColSpec>,
    /// How many of `cols` form the key; 0 = compared as a multiset.
    pub n_key: usize,
    pub ctx: Ctx,
}

impl TableSpec {
    /// Whether key ranges can be pushed into SQL as predicates for this table's key types
    /// (the data must still prove safe: see `RowBuf::key_safe`).
    pub fn pushdown_possible(&self) -> bool {
        self.n_key > 0
            && self.cols[..self.n_key].iter().all(|c| match c.domain {
                // SQLite applies numeric affinity to a bound TEXT compared with a numeric
                // column, and TEXT affinity to an integer: only matching affinities are safe.
                Domain::Integer => {
                    c.affinity != Affinity::Text
                        && matches!(c.pg, PgKind::Int2 | PgKind::Int4 | PgKind::Int8)
                }
                Domain::Text => {
                    matches!(c.affinity, Affinity::Text | Affinity::Blob) && c.pg == PgKind::Text
                }
                _ => false,
            })
    }
}

pub(crate) use ferry_core::sql::quote_ident;
