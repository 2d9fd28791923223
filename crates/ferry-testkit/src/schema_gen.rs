//! SQLite files with real-world schemas: composite keys over `INTEGER_OR_TEXT` columns,
//! CHECK constraints on booleans and mixed-class keys, validation triggers, and views over
//! SQLite's own functions.
//!
//! - [`mixed_keys`]: the three tables of the fidelity issue, exactly (a mixed-class value
//!   column, a composite key mixing integers and text, a boolean CHECK, a `length()` CHECK
//!   on the mixed key, and a foreign key over it).
//! - [`reference`]: a file shaped like a real reference database (a geodetic registry): 37
//!   tables, composite `(auth_name, code)` keys whose codes are integers or text, about a
//!   hundred CHECKs, validation triggers that look into other tables and views, a trigger
//!   that stamps rows, a generated column, views using `ifnull`, `substr`, `instr`,
//!   `group_concat`, `datetime`, `strftime`, `julianday` and `||` on numbers, and a STRICT
//!   table with an `ANY` column. [`ReferenceFacts`] says what it holds.
//!
//! Foreign keys are on while the files are written, so every row satisfies every
//! constraint and trigger SQLite enforces. Everything is deterministic.

use std::path::Path;

use rusqlite::types::Value;
use rusqlite::{params_from_iter, Connection};

use crate::sqlite_gen::Rng;

/// Writes the file of the fidelity issue.
pub fn mixed_keys(path: &Path) -> rusqlite::Result<()> {
    let conn = Connection::open(path)?;
    conn.execute_batch(
        "PRAGMA foreign_keys = ON;
         CREATE TABLE m (id INTEGER PRIMARY KEY, v);
         CREATE TABLE p (a TEXT, code INTEGER_OR_TEXT,
                         flag BOOLEAN NOT NULL CHECK (flag IN (0, 1)),
                         PRIMARY KEY (a, code), CHECK (length(code) >= 1));
         CREATE TABLE ch (a TEXT, code INTEGER_OR_TEXT, FOREIGN KEY (a, code) REFERENCES p (a, code));
         INSERT INTO m (v) VALUES (0.5), (7), ('n/a'), (NULL), (x'01');
         INSERT INTO p VALUES ('EPSG', 4326, 1), ('EPSG', 'X1', 0);
         INSERT INTO ch VALUES ('EPSG', 4326);",
    )
}

/// What a lossless transfer of the [`reference`] file must carry over.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReferenceFacts {
    pub tables: usize,
    pub checks: usize,
    pub foreign_keys: usize,
    pub triggers: usize,
    pub views: usize,
    pub rows: u64,
}

/// The authority-and-code tables: name, then extra column definitions and table
/// constraints. Every one gets `auth_name`, `code`, `name`, `deprecated` and three CHECKs.
const AUTHORITY_TABLES: &[(&str, &str)] = &[
    ("celestial_body", "semi_major_axis FLOAT NOT NULL CHECK (semi_major_axis > 0)"),
    ("unit_of_measure", "type TEXT NOT NULL CHECK (type IN ('length', 'angle', 'scale', 'time', 'parametric')), conv_factor FLOAT CHECK (conv_factor IS NULL OR conv_factor > 0), proj_short_name TEXT"),
    ("extent", "description TEXT NOT NULL, south_lat FLOAT CHECK (south_lat BETWEEN -90 AND 90), north_lat FLOAT CHECK (north_lat BETWEEN -90 AND 90), west_lon FLOAT CHECK (west_lon BETWEEN -180 AND 180), east_lon FLOAT CHECK (east_lon BETWEEN -180 AND 180), area_class TEXT GENERATED ALWAYS AS (CASE WHEN north_lat - south_lat > 90 THEN 'large' ELSE 'small' END) VIRTUAL, CONSTRAINT check_extent_lat CHECK (south_lat <= north_lat)"),
    ("scope", "scope TEXT NOT NULL CHECK (length(scope) >= 1)"),
    ("prime_meridian", "longitude FLOAT NOT NULL CHECK (longitude BETWEEN -180 AND 180), uom_auth_name TEXT NOT NULL, uom_code INTEGER_OR_TEXT NOT NULL, CONSTRAINT fk_pm_uom FOREIGN KEY (uom_auth_name, uom_code) REFERENCES unit_of_measure (auth_name, code)"),
    ("ellipsoid", "description TEXT, celestial_body_auth_name TEXT NOT NULL, celestial_body_code INTEGER_OR_TEXT NOT NULL, semi_major_axis FLOAT NOT NULL CHECK (semi_major_axis > 0), uom_auth_name TEXT NOT NULL, uom_code INTEGER_OR_TEXT NOT NULL, inv_flattening FLOAT CHECK (inv_flattening IS NULL OR inv_flattening >= 0), semi_minor_axis FLOAT CHECK (semi_minor_axis IS NULL OR semi_minor_axis > 0), CONSTRAINT fk_ellipsoid_body FOREIGN KEY (celestial_body_auth_name, celestial_body_code) REFERENCES celestial_body (auth_name, code), CONSTRAINT fk_ellipsoid_uom FOREIGN KEY (uom_auth_name, uom_code) REFERENCES unit_of_measure (auth_name, code), CONSTRAINT check_ellipsoid_exclusive CHECK ((inv_flattening IS NULL AND semi_minor_axis IS NOT NULL) OR (inv_flattening IS NOT NULL AND semi_minor_axis IS NULL))"),
    ("geodetic_datum", "ellipsoid_auth_name TEXT NOT NULL, ellipsoid_code INTEGER_OR_TEXT NOT NULL, prime_meridian_auth_name TEXT NOT NULL, prime_meridian_code INTEGER_OR_TEXT NOT NULL, publication_date TEXT CHECK (publication_date IS NULL OR publication_date GLOB '[1-2][0-9][0-9][0-9]-[0-1][0-9]-[0-3][0-9]'), frame_reference_epoch FLOAT CHECK (frame_reference_epoch IS NULL OR frame_reference_epoch > 1900), anchor TEXT, CONSTRAINT fk_gd_ellipsoid FOREIGN KEY (ellipsoid_auth_name, ellipsoid_code) REFERENCES ellipsoid (auth_name, code), CONSTRAINT fk_gd_pm FOREIGN KEY (prime_meridian_auth_name, prime_meridian_code) REFERENCES prime_meridian (auth_name, code)"),
    ("vertical_datum", "publication_date TEXT CHECK (publication_date IS NULL OR publication_date GLOB '[1-2][0-9][0-9][0-9]-[0-1][0-9]-[0-3][0-9]'), frame_reference_epoch FLOAT, anchor TEXT"),
    ("engineering_datum", "publication_date TEXT, anchor TEXT"),
    ("datum_ensemble", "ensemble_accuracy FLOAT NOT NULL CHECK (ensemble_accuracy > 0)"),
    ("coordinate_system", "type TEXT NOT NULL CHECK (type IN ('Cartesian', 'vertical', 'ellipsoidal', 'spherical', 'ordinal')), dimension SMALLINT NOT NULL CHECK (dimension BETWEEN 1 AND 3)"),
    ("geodetic_crs", "description TEXT, type TEXT NOT NULL CHECK (type IN ('geographic 2D', 'geographic 3D', 'geocentric', 'other')), coordinate_system_auth_name TEXT NOT NULL, coordinate_system_code INTEGER_OR_TEXT NOT NULL, datum_auth_name TEXT NOT NULL, datum_code INTEGER_OR_TEXT NOT NULL, text_definition TEXT CHECK (text_definition IS NULL OR substr(text_definition, 1, 1) = '+'), CONSTRAINT fk_gcrs_cs FOREIGN KEY (coordinate_system_auth_name, coordinate_system_code) REFERENCES coordinate_system (auth_name, code), CONSTRAINT fk_gcrs_datum FOREIGN KEY (datum_auth_name, datum_code) REFERENCES geodetic_datum (auth_name, code)"),
    ("vertical_crs", "description TEXT, coordinate_system_auth_name TEXT NOT NULL, coordinate_system_code INTEGER_OR_TEXT NOT NULL, datum_auth_name TEXT NOT NULL, datum_code INTEGER_OR_TEXT NOT NULL, CONSTRAINT fk_vcrs_cs FOREIGN KEY (coordinate_system_auth_name, coordinate_system_code) REFERENCES coordinate_system (auth_name, code), CONSTRAINT fk_vcrs_datum FOREIGN KEY (datum_auth_name, datum_code) REFERENCES vertical_datum (auth_name, code)"),
    ("conversion_method", "param_count INTEGER NOT NULL CHECK (typeof(param_count) = 'integer' AND param_count BETWEEN 0 AND 7)"),
    ("conversion", "description TEXT, method_auth_name TEXT NOT NULL, method_code INTEGER_OR_TEXT NOT NULL, param1_value FLOAT, param1_uom_auth_name TEXT, param1_uom_code INTEGER_OR_TEXT, param2_value FLOAT, param2_uom_auth_name TEXT, param2_uom_code INTEGER_OR_TEXT, CONSTRAINT fk_conv_method FOREIGN KEY (method_auth_name, method_code) REFERENCES conversion_method (auth_name, code), CONSTRAINT fk_conv_p1_uom FOREIGN KEY (param1_uom_auth_name, param1_uom_code) REFERENCES unit_of_measure (auth_name, code), CONSTRAINT fk_conv_p2_uom FOREIGN KEY (param2_uom_auth_name, param2_uom_code) REFERENCES unit_of_measure (auth_name, code), CONSTRAINT check_conv_p1 CHECK ((param1_value IS NULL) = (param1_uom_code IS NULL))"),
    ("projected_crs", "description TEXT, coordinate_system_auth_name TEXT NOT NULL, coordinate_system_code INTEGER_OR_TEXT NOT NULL, geodetic_crs_auth_name TEXT NOT NULL, geodetic_crs_code INTEGER_OR_TEXT NOT NULL, conversion_auth_name TEXT NOT NULL, conversion_code INTEGER_OR_TEXT NOT NULL, CONSTRAINT fk_pcrs_cs FOREIGN KEY (coordinate_system_auth_name, coordinate_system_code) REFERENCES coordinate_system (auth_name, code), CONSTRAINT fk_pcrs_gcrs FOREIGN KEY (geodetic_crs_auth_name, geodetic_crs_code) REFERENCES geodetic_crs (auth_name, code), CONSTRAINT fk_pcrs_conv FOREIGN KEY (conversion_auth_name, conversion_code) REFERENCES conversion (auth_name, code)"),
    ("compound_crs", "description TEXT, horiz_crs_auth_name TEXT NOT NULL, horiz_crs_code INTEGER_OR_TEXT NOT NULL, vertical_crs_auth_name TEXT NOT NULL, vertical_crs_code INTEGER_OR_TEXT NOT NULL, CONSTRAINT fk_ccrs_vert FOREIGN KEY (vertical_crs_auth_name, vertical_crs_code) REFERENCES vertical_crs (auth_name, code)"),
    ("helmert_transformation", "description TEXT, method_auth_name TEXT NOT NULL, method_code INTEGER_OR_TEXT NOT NULL, source_crs_auth_name TEXT NOT NULL, source_crs_code INTEGER_OR_TEXT NOT NULL, target_crs_auth_name TEXT NOT NULL, target_crs_code INTEGER_OR_TEXT NOT NULL, accuracy FLOAT CHECK (accuracy IS NULL OR accuracy >= 0), tx FLOAT NOT NULL, ty FLOAT NOT NULL, tz FLOAT NOT NULL, translation_uom_auth_name TEXT NOT NULL, translation_uom_code INTEGER_OR_TEXT NOT NULL, CONSTRAINT fk_ht_method FOREIGN KEY (method_auth_name, method_code) REFERENCES conversion_method (auth_name, code), CONSTRAINT fk_ht_uom FOREIGN KEY (translation_uom_auth_name, translation_uom_code) REFERENCES unit_of_measure (auth_name, code), CONSTRAINT check_ht_crs CHECK (source_crs_auth_name <> target_crs_auth_name OR source_crs_code <> target_crs_code)"),
    ("grid_transformation", "description TEXT, method_auth_name TEXT NOT NULL, method_code INTEGER_OR_TEXT NOT NULL, source_crs_auth_name TEXT NOT NULL, source_crs_code INTEGER_OR_TEXT NOT NULL, target_crs_auth_name TEXT NOT NULL, target_crs_code INTEGER_OR_TEXT NOT NULL, accuracy FLOAT CHECK (accuracy IS NULL OR accuracy >= 0), grid_param_name TEXT NOT NULL, grid_name TEXT NOT NULL CHECK (length(grid_name) >= 1 AND grid_name NOT LIKE '% %'), CONSTRAINT fk_gt_method FOREIGN KEY (method_auth_name, method_code) REFERENCES conversion_method (auth_name, code)"),
    ("other_transformation", "description TEXT, method_auth_name TEXT NOT NULL, method_code INTEGER_OR_TEXT NOT NULL, source_crs_auth_name TEXT NOT NULL, source_crs_code INTEGER_OR_TEXT NOT NULL, target_crs_auth_name TEXT NOT NULL, target_crs_code INTEGER_OR_TEXT NOT NULL, accuracy FLOAT CHECK (accuracy IS NULL OR accuracy >= 0), CONSTRAINT fk_ot_method FOREIGN KEY (method_auth_name, method_code) REFERENCES conversion_method (auth_name, code)"),
    ("concatenated_operation", "description TEXT, source_crs_auth_name TEXT NOT NULL, source_crs_code INTEGER_OR_TEXT NOT NULL, target_crs_auth_name TEXT NOT NULL, target_crs_code INTEGER_OR_TEXT NOT NULL, accuracy FLOAT CHECK (accuracy IS NULL OR accuracy >= 0)"),
    ("geoid_model", "operation_auth_name TEXT NOT NULL, operation_code INTEGER_OR_TEXT NOT NULL, CONSTRAINT fk_geoid_op FOREIGN KEY (operation_auth_name, operation_code) REFERENCES grid_transformation (auth_name, code)"),
    ("coordinate_metadata", "crs_auth_name TEXT NOT NULL, crs_code INTEGER_OR_TEXT NOT NULL, coordinate_epoch FLOAT CHECK (coordinate_epoch IS NULL OR coordinate_epoch > 1900), CONSTRAINT fk_cm_crs FOREIGN KEY (crs_auth_name, crs_code) REFERENCES geodetic_crs (auth_name, code)"),
];

/// Writes the reference-shaped file.
pub fn reference(path: &Path) -> rusqlite::Result<ReferenceFacts> {
    let mut conn = Connection::open(path)?;
    conn.execute_batch("PRAGMA foreign_keys = ON")?;
    let mut ddl = String::new();
    ddl.push_str(
        "CREATE TABLE metadata (key TEXT NOT NULL PRIMARY KEY CHECK (length(key) >= 1), value TEXT NOT NULL) WITHOUT ROWID;\n",
    );
    for (name, extra) in AUTHORITY_TABLES {
        ddl.push_str(&format!(
            "CREATE TABLE {name} (\n  auth_name TEXT NOT NULL CHECK (length(auth_name) >= 1),\n  code INTEGER_OR_TEXT NOT NULL CHECK (length(code) >= 1),\n  name TEXT NOT NULL CHECK (length(name) >= 2),\n  deprecated BOOLEAN NOT NULL CHECK (deprecated IN (0, 1)),\n  {extra},\n  CONSTRAINT pk_{name} PRIMARY KEY (auth_name, code)\n) WITHOUT ROWID;\n"
        ));
    }
    ddl.push_str(REST_OF_SCHEMA);
    conn.execute_batch(&ddl)?;
    let mut rng = Rng::new(0x0E95_6326);
    let tx = conn.transaction()?;
    let rows = fill(&tx, &mut rng)?;
    tx.commit()?;
    let count = |sql: &str| -> rusqlite::Result<usize> {
        conn.query_row(sql, [], |r| r.get::<_, i64>(0))
            .map(|n| n as usize)
    };
    let tables = count("SELECT count(*) FROM sqlite_schema WHERE type = 'table'")?;
    let views = count("SELECT count(*) FROM sqlite_schema WHERE type = 'view'")?;
    let triggers = count("SELECT count(*) FROM sqlite_schema WHERE type = 'trigger'")?;
    let foreign_keys = count(
        "SELECT count(*) FROM (SELECT DISTINCT m.name, f.id FROM sqlite_schema m, pragma_foreign_key_list(m.name) f WHERE m.type = 'table')",
    )?;
    let mut checks = 0;
    let mut st = conn.prepare("SELECT sql FROM sqlite_schema WHERE type = 'table'")?;
    for sql in st.query_map([], |r| r.get::<_, String>(0))? {
        checks += sql?.matches("CHECK (").count();
    }
    Ok(ReferenceFacts {
        tables,
        checks,
        foreign_keys,
        triggers,
        views,
        rows,
    })
}

const REST_OF_SCHEMA: &str = r#"
CREATE TABLE usage (
  auth_name TEXT NOT NULL CHECK (length(auth_name) >= 1),
  code INTEGER_OR_TEXT NOT NULL CHECK (length(code) >= 1),
  object_table_name TEXT NOT NULL CHECK (object_table_name IN ('geodetic_crs', 'projected_crs', 'vertical_crs', 'compound_crs', 'helmert_transformation', 'grid_transformation', 'other_transformation', 'concatenated_operation', 'conversion')),
  object_auth_name TEXT NOT NULL,
  object_code INTEGER_OR_TEXT NOT NULL,
  extent_auth_name TEXT NOT NULL,
  extent_code INTEGER_OR_TEXT NOT NULL,
  scope_auth_name TEXT NOT NULL,
  scope_code INTEGER_OR_TEXT NOT NULL,
  CONSTRAINT pk_usage PRIMARY KEY (auth_name, code),
  CONSTRAINT fk_usage_extent FOREIGN KEY (extent_auth_name, extent_code) REFERENCES extent (auth_name, code),
  CONSTRAINT fk_usage_scope FOREIGN KEY (scope_auth_name, scope_code) REFERENCES scope (auth_name, code)
) WITHOUT ROWID;
CREATE TABLE datum_ensemble_member (
  ensemble_auth_name TEXT NOT NULL,
  ensemble_code INTEGER_OR_TEXT NOT NULL,
  member_auth_name TEXT NOT NULL,
  member_code INTEGER_OR_TEXT NOT NULL,
  sequence INTEGER NOT NULL CHECK (sequence >= 1),
  CONSTRAINT pk_datum_ensemble_member PRIMARY KEY (ensemble_auth_name, ensemble_code, sequence),
  CONSTRAINT fk_dem_ensemble FOREIGN KEY (ensemble_auth_name, ensemble_code) REFERENCES datum_ensemble (auth_name, code)
) WITHOUT ROWID;
CREATE TABLE axis (
  auth_name TEXT NOT NULL CHECK (length(auth_name) >= 1),
  code INTEGER_OR_TEXT NOT NULL CHECK (length(code) >= 1),
  name TEXT NOT NULL,
  abbrev TEXT NOT NULL CHECK (length(abbrev) BETWEEN 1 AND 4),
  orientation TEXT NOT NULL CHECK (orientation IN ('north', 'south', 'east', 'west', 'up', 'down', 'geocentricX', 'geocentricY', 'geocentricZ')),
  coordinate_system_auth_name TEXT NOT NULL,
  coordinate_system_code INTEGER_OR_TEXT NOT NULL,
  coordinate_system_order SMALLINT NOT NULL CHECK (coordinate_system_order BETWEEN 1 AND 3),
  uom_auth_name TEXT,
  uom_code INTEGER_OR_TEXT,
  CONSTRAINT pk_axis PRIMARY KEY (auth_name, code),
  CONSTRAINT fk_axis_cs FOREIGN KEY (coordinate_system_auth_name, coordinate_system_code) REFERENCES coordinate_system (auth_name, code),
  CONSTRAINT fk_axis_uom FOREIGN KEY (uom_auth_name, uom_code) REFERENCES unit_of_measure (auth_name, code)
) WITHOUT ROWID;
CREATE TABLE concatenated_operation_step (
  operation_auth_name TEXT NOT NULL,
  operation_code INTEGER_OR_TEXT NOT NULL,
  step_number INTEGER NOT NULL CHECK (step_number >= 1),
  step_auth_name TEXT NOT NULL,
  step_code INTEGER_OR_TEXT NOT NULL,
  step_direction TEXT CHECK (step_direction IS NULL OR step_direction IN ('forward', 'reverse')),
  CONSTRAINT pk_concatenated_operation_step PRIMARY KEY (operation_auth_name, operation_code, step_number),
  CONSTRAINT fk_cos_op FOREIGN KEY (operation_auth_name, operation_code) REFERENCES concatenated_operation (auth_name, code)
) WITHOUT ROWID;
CREATE TABLE grid_packages (
  package_name TEXT NOT NULL PRIMARY KEY CHECK (length(package_name) >= 1),
  description TEXT,
  url TEXT CHECK (url IS NULL OR url LIKE 'https://%' OR url LIKE 'http://%'),
  direct_download BOOLEAN CHECK (direct_download IN (0, 1)),
  open_license BOOLEAN CHECK (open_license IN (0, 1))
);
CREATE TABLE grid_alternatives (
  original_grid_name TEXT NOT NULL PRIMARY KEY,
  proj_grid_name TEXT NOT NULL CHECK (proj_grid_name NOT GLOB '*[ ]*'),
  old_proj_grid_name TEXT,
  proj_grid_format TEXT NOT NULL CHECK (proj_grid_format IN ('GTiff', 'GTX', 'NTv1', 'NTv2', 'CTable2')),
  proj_method TEXT NOT NULL CHECK (proj_method IN ('geoid_like', 'geocentric_translation_by_grid_interpolation_ign', 'hgridshift', 'vgridshift', 'velocity_grid')),
  inverse_direction BOOLEAN NOT NULL CHECK (inverse_direction IN (0, 1)),
  package_name TEXT REFERENCES grid_packages (package_name),
  url TEXT CHECK (url IS NULL OR instr(url, '://') > 0),
  direct_download BOOLEAN CHECK (direct_download IN (0, 1)),
  open_license BOOLEAN CHECK (open_license IN (0, 1)),
  directory TEXT,
  CONSTRAINT check_ga_package_or_url CHECK ((package_name IS NULL) <> (url IS NULL))
);
CREATE TABLE alias_name (
  table_name TEXT NOT NULL CHECK (table_name IN ('unit_of_measure', 'celestial_body', 'ellipsoid', 'prime_meridian', 'geodetic_datum', 'vertical_datum', 'geodetic_crs', 'projected_crs', 'vertical_crs', 'compound_crs', 'conversion')),
  auth_name TEXT NOT NULL CHECK (length(auth_name) >= 1),
  code INTEGER_OR_TEXT NOT NULL CHECK (length(code) >= 1),
  alt_name TEXT NOT NULL CHECK (length(alt_name) >= 2),
  source TEXT
);
CREATE TABLE supersession (
  superseded_table_name TEXT NOT NULL CHECK (superseded_table_name IN ('helmert_transformation', 'grid_transformation', 'other_transformation', 'concatenated_operation')),
  superseded_auth_name TEXT NOT NULL,
  superseded_code INTEGER_OR_TEXT NOT NULL,
  replacement_table_name TEXT NOT NULL,
  replacement_auth_name TEXT NOT NULL,
  replacement_code INTEGER_OR_TEXT NOT NULL,
  source TEXT,
  same_source_target_crs BOOLEAN NOT NULL CHECK (same_source_target_crs IN (0, 1))
);
CREATE TABLE deprecation (
  table_name TEXT NOT NULL CHECK (table_name IN ('unit_of_measure', 'celestial_body', 'ellipsoid', 'prime_meridian', 'geodetic_datum', 'vertical_datum', 'geodetic_crs', 'projected_crs', 'vertical_crs', 'compound_crs', 'conversion')),
  deprecated_auth_name TEXT NOT NULL,
  deprecated_code INTEGER_OR_TEXT NOT NULL,
  replacement_auth_name TEXT NOT NULL,
  replacement_code INTEGER_OR_TEXT NOT NULL,
  source TEXT
);
CREATE TABLE authority_to_authority_preference (
  source_auth_name TEXT NOT NULL,
  target_auth_name TEXT NOT NULL,
  allowed_authorities TEXT NOT NULL CHECK (length(allowed_authorities) >= 1 AND allowed_authorities NOT LIKE '%,'),
  CONSTRAINT unique_authority_to_authority_preference UNIQUE (source_auth_name, target_auth_name)
);
CREATE TABLE versioned_auth_name_mapping (
  auth_name TEXT NOT NULL,
  versioned_auth_name TEXT NOT NULL,
  version TEXT NOT NULL CHECK (version GLOB '[0-9]*.[0-9]*'),
  priority INTEGER NOT NULL CHECK (typeof(priority) = 'integer' AND priority >= 0),
  CONSTRAINT unique_versioned_auth_name_mapping UNIQUE (auth_name, version),
  CONSTRAINT unique_versioned_auth_name_priority UNIQUE (auth_name, priority)
);
CREATE TABLE change_log (
  id INTEGER PRIMARY KEY,
  at DATETIME NOT NULL CHECK (length(at) = 19 AND at LIKE '____-__-__ __:__:__'),
  table_name TEXT NOT NULL,
  auth_name TEXT NOT NULL,
  code INTEGER_OR_TEXT NOT NULL CHECK (typeof(code) IN ('integer', 'text')),
  note TEXT,
  edited_at DATETIME
);
CREATE TABLE settings (
  key TEXT PRIMARY KEY CHECK (substr(key, 1, 1) <> '_'),
  value ANY,
  CHECK (typeof(value) <> 'blob' OR length(value) <= 16)
) STRICT;

CREATE INDEX idx_ellipsoid_body ON ellipsoid (celestial_body_auth_name, celestial_body_code);
CREATE INDEX idx_usage_object ON usage (object_table_name, object_auth_name, object_code);
CREATE INDEX idx_geodetic_crs_datum ON geodetic_crs (datum_auth_name, datum_code);
CREATE INDEX idx_alias_name ON alias_name (table_name, auth_name, code);
CREATE INDEX idx_change_log_at ON change_log (at) WHERE note IS NOT NULL;

CREATE VIEW crs_view AS
  SELECT CAST('geodetic_crs' AS TEXT) AS table_name, auth_name, code, name, type, deprecated FROM geodetic_crs
  UNION ALL
  SELECT CAST('projected_crs' AS TEXT), auth_name, code, name, 'projected', deprecated FROM projected_crs
  UNION ALL
  SELECT CAST('vertical_crs' AS TEXT), auth_name, code, name, 'vertical', deprecated FROM vertical_crs
  UNION ALL
  SELECT CAST('compound_crs' AS TEXT), auth_name, code, name, 'compound', deprecated FROM compound_crs;
CREATE VIEW object_view AS
  SELECT 'ellipsoid' AS table_name, auth_name || ':' || code AS id, substr(name, 1, 8) AS short_name,
         instr(name, ' ') AS first_space, ifnull(description, '(none)') AS description
  FROM ellipsoid;
CREATE VIEW authority_list AS
  SELECT auth_name, count(*) AS objects, group_concat(code, ';') AS codes FROM unit_of_measure GROUP BY auth_name;
CREATE VIEW recent_changes AS
  SELECT id, datetime(at) AS at_text, strftime('%Y', at) AS year, date(at, '+1 day') AS next_day,
         julianday(at) - julianday('2000-01-01') AS days_since_2000, table_name || '/' || code AS what
  FROM change_log WHERE at >= '2020-01-01';
CREATE VIEW operation_steps AS
  SELECT operation_auth_name || ':' || operation_code || '#' || step_number AS label, step_number * 10 AS weight,
         CASE WHEN step_direction = 'reverse' THEN 'inverse of ' || step_code ELSE step_code || '' END AS step
  FROM concatenated_operation_step;
CREATE VIEW ellipsoid_summary AS
  SELECT e.auth_name, e.code, e.name, CAST(e.semi_major_axis / 1000.0 AS INTEGER) AS km, round(e.semi_major_axis) AS metres,
         CASE WHEN e.inv_flattening IS NULL THEN 'semi-minor axis' ELSE 'inverse flattening' END AS defined_by,
         u.name AS unit
  FROM ellipsoid e JOIN unit_of_measure u ON u.auth_name = e.uom_auth_name AND u.code = e.uom_code
  WHERE NOT e.deprecated;

CREATE TRIGGER ellipsoid_insert_trigger BEFORE INSERT ON ellipsoid FOR EACH ROW BEGIN
  SELECT RAISE(ABORT, 'insert on ellipsoid violates constraint: uom of semi_major_axis must be of type ''length''')
    WHERE (SELECT type FROM unit_of_measure WHERE auth_name = NEW.uom_auth_name AND code = NEW.uom_code) != 'length';
  SELECT RAISE(ABORT, 'insert on ellipsoid violates constraint: semi_minor_axis must be smaller than semi_major_axis')
    WHERE NEW.semi_minor_axis IS NOT NULL AND NEW.semi_minor_axis > NEW.semi_major_axis;
END;
CREATE TRIGGER prime_meridian_insert_trigger BEFORE INSERT ON prime_meridian FOR EACH ROW BEGIN
  SELECT RAISE(ABORT, 'insert on prime_meridian violates constraint: uom must be of type ''angle''')
    WHERE (SELECT type FROM unit_of_measure WHERE auth_name = NEW.uom_auth_name AND code = NEW.uom_code) != 'angle';
END;
CREATE TRIGGER geodetic_crs_insert_trigger BEFORE INSERT ON geodetic_crs FOR EACH ROW BEGIN
  SELECT RAISE(ABORT, 'insert on geodetic_crs violates constraint: (auth_name, code) must not already exist in crs_view')
    WHERE EXISTS (SELECT 1 FROM crs_view WHERE crs_view.auth_name = NEW.auth_name AND crs_view.code = NEW.code);
  SELECT RAISE(ABORT, 'insert on geodetic_crs violates constraint: coordinate_system.dimension must be 3 for type = ''geocentric''')
    WHERE NEW.type = 'geocentric' AND (SELECT dimension FROM coordinate_system WHERE coordinate_system.auth_name = NEW.coordinate_system_auth_name AND coordinate_system.code = NEW.coordinate_system_code) != 3;
  SELECT RAISE(ABORT, 'insert on geodetic_crs violates constraint: a deprecated datum cannot be used')
    WHERE EXISTS (SELECT 1 FROM geodetic_datum d WHERE d.auth_name = NEW.datum_auth_name AND d.code = NEW.datum_code AND d.deprecated);
END;
CREATE TRIGGER projected_crs_insert_trigger BEFORE INSERT ON projected_crs FOR EACH ROW BEGIN
  SELECT RAISE(ABORT, 'insert on projected_crs violates constraint: (auth_name, code) must not already exist in crs_view')
    WHERE EXISTS (SELECT 1 FROM crs_view WHERE crs_view.auth_name = NEW.auth_name AND crs_view.code = NEW.code);
  SELECT RAISE(ABORT, 'insert on projected_crs violates constraint: coordinate_system must be Cartesian')
    WHERE (SELECT type FROM coordinate_system WHERE coordinate_system.auth_name = NEW.coordinate_system_auth_name AND coordinate_system.code = NEW.coordinate_system_code) != 'Cartesian';
END;
CREATE TRIGGER conversion_method_update_trigger BEFORE UPDATE OF param_count ON conversion_method FOR EACH ROW
  WHEN NEW.param_count < OLD.param_count BEGIN
  SELECT RAISE(ABORT, 'update on conversion_method violates constraint: param_count may only grow');
END;
CREATE TRIGGER unit_of_measure_delete_trigger BEFORE DELETE ON unit_of_measure FOR EACH ROW BEGIN
  SELECT RAISE(ABORT, 'delete on unit_of_measure violates constraint: the unit is used by an ellipsoid')
    WHERE EXISTS (SELECT 1 FROM ellipsoid e WHERE e.uom_auth_name = OLD.auth_name AND e.uom_code = OLD.code);
END;
CREATE TRIGGER change_log_edit_trigger AFTER UPDATE OF note ON change_log FOR EACH ROW BEGIN
  UPDATE change_log SET edited_at = datetime('now') WHERE id = NEW.id;
END;
"#;

/// Codes as the registry writes them: integers from `base`, and every `text_every`-th a text.
fn code(base: i64, i: usize, text_every: usize) -> Value {
    if text_every > 0 && i % text_every == text_every - 1 {
        Value::Text(format!("X{}", base + i as i64))
    } else {
        Value::Integer(base + i as i64)
    }
}

fn auth(i: usize) -> &'static str {
    ["EPSG", "EPSG", "EPSG", "IGNF", "ESRI"][i % 5]
}

/// One row, its columns named.
fn ins(tx: &Connection, table: &str, cols: &str, values: Vec<Value>) -> rusqlite::Result<u64> {
    let marks: Vec<String> = (1..=values.len()).map(|i| format!("?{i}")).collect();
    tx.execute(
        &format!("INSERT INTO {table} ({cols}) VALUES ({})", marks.join(", ")),
        params_from_iter(values),
    )
    .map(|n| n as u64)
}

fn t(s: impl Into<String>) -> Value {
    Value::Text(s.into())
}

fn real(x: f64) -> Value {
    Value::Real(x)
}

fn int(i: i64) -> Value {
    Value::Integer(i)
}

fn null() -> Value {
    Value::Null
}

/// A key of another table: `(auth_name, code)`.
#[derive(Debug, Clone)]
struct Key(&'static str, Value);

fn keys(n: usize, base: i64, text_every: usize) -> Vec<Key> {
    (0..n)
        .map(|i| Key(auth(i), code(base, i, text_every)))
        .collect()
}

const BASE: &str = "auth_name, code, name, deprecated";

fn fill(tx: &Connection, rng: &mut Rng) -> rusqlite::Result<u64> {
    let mut rows = 0;
    for (k, v) in [
        ("DATABASE.LAYOUT.VERSION.MAJOR", "1"),
        ("EPSG.VERSION", "v11.004"),
    ] {
        rows += ins(tx, "metadata", "key, value", vec![t(k), t(v)])?;
    }
    // Units: every third a length, an angle, a scale; codes mix integers and text.
    let units = keys(15, 9000, 4);
    let kind = |i: usize| ["length", "angle", "scale"][i % 3];
    for (i, k) in units.iter().enumerate() {
        let factor = if kind(i) == "scale" {
            null()
        } else {
            real(0.25 + i as f64 / 8.0)
        };
        rows += ins(
            tx,
            "unit_of_measure",
            &format!("{BASE}, type, conv_factor, proj_short_name"),
            vec![
                t(k.0),
                k.1.clone(),
                t(format!("unit {i}")),
                int(0),
                t(kind(i)),
                factor,
                t(format!("u{i}")),
            ],
        )?;
    }
    let lengths: Vec<&Key> = units
        .iter()
        .enumerate()
        .filter(|(i, _)| kind(*i) == "length")
        .map(|(_, k)| k)
        .collect();
    let angles: Vec<&Key> = units
        .iter()
        .enumerate()
        .filter(|(i, _)| kind(*i) == "angle")
        .map(|(_, k)| k)
        .collect();
    let bodies = keys(3, 1, 0);
    for (i, k) in bodies.iter().enumerate() {
        rows += ins(
            tx,
            "celestial_body",
            &format!("{BASE}, semi_major_axis"),
            vec![
                t(k.0),
                k.1.clone(),
                t(["Earth", "Moon", "Mars"][i]),
                int(0),
                real([6378137.0, 1737400.0, 3396190.0][i]),
            ],
        )?;
    }
    let extents = keys(20, 1262, 6);
    for (i, k) in extents.iter().enumerate() {
        let south = -80.0 + (i as f64) * 7.5;
        let north = (south + 5.0 + rng.below(90) as f64).min(90.0);
        let west = -170.0 + (i as f64) * 15.0;
        rows += ins(
            tx,
            "extent",
            &format!("{BASE}, description, south_lat, north_lat, west_lon, east_lon"),
            vec![
                t(k.0),
                k.1.clone(),
                t(format!("Extent {i}")),
                int(0),
                t(format!("area number {i}")),
                real(south),
                real(north),
                real(west),
                real((west + 10.0).min(180.0)),
            ],
        )?;
    }
    let scopes = keys(10, 1024, 4);
    for (i, k) in scopes.iter().enumerate() {
        rows += ins(
            tx,
            "scope",
            &format!("{BASE}, scope"),
            vec![
                t(k.0),
                k.1.clone(),
                t(format!("scope {i}")),
                int(0),
                t(format!("Geodesy, use {i}.")),
            ],
        )?;
    }
    let meridians = keys(4, 8900, 3);
    for (i, k) in meridians.iter().enumerate() {
        let u = angles[i % angles.len()];
        rows += ins(
            tx,
            "prime_meridian",
            &format!("{BASE}, longitude, uom_auth_name, uom_code"),
            vec![
                t(k.0),
                k.1.clone(),
                t(["Greenwich", "Paris", "Bogota", "Madrid"][i]),
                int(0),
                real(i as f64 * 2.337),
                t(u.0),
                u.1.clone(),
            ],
        )?;
    }
    let ellipsoids = keys(15, 7000, 5);
    for (i, k) in ellipsoids.iter().enumerate() {
        let b = &bodies[i % bodies.len()];
        let u = lengths[i % lengths.len()];
        let major = 6_378_000.0 + i as f64 * 101.5;
        let (inv, minor) = if i % 3 == 0 {
            (null(), real(major - 21_384.7))
        } else {
            (real(298.25 + i as f64 / 100.0), null())
        };
        let description = if i % 4 == 0 {
            null()
        } else {
            t(format!("ellipsoid of survey {i}"))
        };
        rows += ins(tx, "ellipsoid", &format!("{BASE}, description, celestial_body_auth_name, celestial_body_code, semi_major_axis, uom_auth_name, uom_code, inv_flattening, semi_minor_axis"),
            vec![t(k.0), k.1.clone(), t(format!("Ellipsoid {i} {}", ["Bessel", "Clarke", "GRS"][i % 3])), int((i % 7 == 6) as i64), description, t(b.0), b.1.clone(), real(major), t(u.0), u.1.clone(), inv, minor])?;
    }
    let datums = keys(15, 6000, 5);
    for (i, k) in datums.iter().enumerate() {
        let e = &ellipsoids[i % ellipsoids.len()];
        let pm = &meridians[i % meridians.len()];
        let date = if i % 4 == 0 {
            null()
        } else {
            t(format!("{}-{:02}-{:02}", 1950 + i, 1 + i % 12, 1 + i % 28))
        };
        let epoch = if i % 3 == 0 {
            real(2000.0 + i as f64 / 2.0)
        } else {
            null()
        };
        rows += ins(tx, "geodetic_datum", &format!("{BASE}, ellipsoid_auth_name, ellipsoid_code, prime_meridian_auth_name, prime_meridian_code, publication_date, frame_reference_epoch, anchor"),
            vec![t(k.0), k.1.clone(), t(format!("Datum {i}")), int((i % 5 == 4) as i64), t(e.0), e.1.clone(), t(pm.0), pm.1.clone(), date, epoch, t(format!("anchor {i}"))])?;
    }
    let vdatums = keys(6, 5100, 3);
    for (i, k) in vdatums.iter().enumerate() {
        rows += ins(
            tx,
            "vertical_datum",
            &format!("{BASE}, publication_date, frame_reference_epoch, anchor"),
            vec![
                t(k.0),
                k.1.clone(),
                t(format!("Vertical datum {i}")),
                int(0),
                t(format!("19{:02}-0{}-1{}", 60 + i, 1 + i % 9, i % 10)),
                null(),
                null(),
            ],
        )?;
    }
    for (i, k) in keys(3, 9300, 0).iter().enumerate() {
        rows += ins(
            tx,
            "engineering_datum",
            &format!("{BASE}, publication_date, anchor"),
            vec![
                t(k.0),
                k.1.clone(),
                t(format!("Site {i}")),
                int(0),
                null(),
                t("local"),
            ],
        )?;
    }
    let ensembles = keys(3, 6300, 0);
    for (i, k) in ensembles.iter().enumerate() {
        rows += ins(
            tx,
            "datum_ensemble",
            &format!("{BASE}, ensemble_accuracy"),
            vec![
                t(k.0),
                k.1.clone(),
                t(format!("Ensemble {i}")),
                int(0),
                real(2.0 / (i + 1) as f64),
            ],
        )?;
        for s in 1..=2i64 {
            let d = &datums[(i * 2 + s as usize) % datums.len()];
            rows += ins(
                tx,
                "datum_ensemble_member",
                "ensemble_auth_name, ensemble_code, member_auth_name, member_code, sequence",
                vec![t(k.0), k.1.clone(), t(d.0), d.1.clone(), int(s)],
            )?;
        }
    }
    // Coordinate systems: ellipsoidal 2D, Cartesian 2D, Cartesian 3D, vertical, spherical.
    let cs_kinds = [
        ("ellipsoidal", 2),
        ("Cartesian", 2),
        ("Cartesian", 3),
        ("vertical", 1),
        ("spherical", 3),
    ];
    let systems = keys(10, 4400, 4);
    for (i, k) in systems.iter().enumerate() {
        let (ty, dim) = cs_kinds[i % cs_kinds.len()];
        rows += ins(
            tx,
            "coordinate_system",
            &format!("{BASE}, type, dimension"),
            vec![
                t(k.0),
                k.1.clone(),
                t(format!("{ty} CS {i}")),
                int(0),
                t(ty),
                int(dim),
            ],
        )?;
        for order in 1..=dim {
            let orientation = match ty {
                "vertical" => "up",
                "ellipsoidal" => ["north", "east"][(order - 1) as usize],
                _ => ["geocentricX", "geocentricY", "geocentricZ"][(order - 1) as usize],
            };
            let u = if order == 2 && i % 2 == 0 {
                (null(), null())
            } else {
                let u = lengths[(i + order as usize) % lengths.len()];
                (t(u.0), u.1.clone())
            };
            rows += ins(tx, "axis", "auth_name, code, name, abbrev, orientation, coordinate_system_auth_name, coordinate_system_code, coordinate_system_order, uom_auth_name, uom_code",
                vec![t("EPSG"), int(100 + (i * 3) as i64 + order), t(format!("Axis {order} of {i}")), t(["X", "Y", "Z"][(order - 1) as usize]), t(orientation), t(k.0), k.1.clone(), int(order), u.0, u.1])?;
        }
    }
    let system_of = |ty: &str, dim: i64| -> &Key {
        let i = cs_kinds
            .iter()
            .position(|c| c.0 == ty && c.1 == dim)
            .unwrap_or(0);
        &systems[i]
    };
    let live_datums: Vec<&Key> = datums
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 5 != 4)
        .map(|(_, k)| k)
        .collect();
    let geodetic = keys(20, 4000, 6);
    for (i, k) in geodetic.iter().enumerate() {
        let (ty, cs) = match i % 4 {
            0 => ("geographic 2D", system_of("ellipsoidal", 2)),
            1 => ("geographic 3D", system_of("ellipsoidal", 2)),
            2 => ("geocentric", system_of("Cartesian", 3)),
            _ => ("other", system_of("spherical", 3)),
        };
        let d = live_datums[i % live_datums.len()];
        let def = if i % 5 == 0 {
            t(format!("+proj=longlat +datum={i}"))
        } else {
            null()
        };
        rows += ins(tx, "geodetic_crs", &format!("{BASE}, description, type, coordinate_system_auth_name, coordinate_system_code, datum_auth_name, datum_code, text_definition"),
            vec![t(k.0), k.1.clone(), t(format!("Geodetic CRS {i}")), int((i % 9 == 8) as i64), null(), t(ty), t(cs.0), cs.1.clone(), t(d.0), d.1.clone(), def])?;
    }
    let vertical = keys(6, 5700, 0);
    for (i, k) in vertical.iter().enumerate() {
        let cs = system_of("vertical", 1);
        let d = &vdatums[i % vdatums.len()];
        rows += ins(tx, "vertical_crs", &format!("{BASE}, description, coordinate_system_auth_name, coordinate_system_code, datum_auth_name, datum_code"),
            vec![t(k.0), k.1.clone(), t(format!("Heights {i}")), int(0), null(), t(cs.0), cs.1.clone(), t(d.0), d.1.clone()])?;
    }
    let methods = keys(6, 9600, 0);
    for (i, k) in methods.iter().enumerate() {
        rows += ins(
            tx,
            "conversion_method",
            &format!("{BASE}, param_count"),
            vec![
                t(k.0),
                k.1.clone(),
                t(format!("Method {i}")),
                int(0),
                int(i as i64),
            ],
        )?;
    }
    let conversions = keys(10, 16000, 4);
    for (i, k) in conversions.iter().enumerate() {
        let m = &methods[i % methods.len()];
        let (v1, u1a, u1c) = if i % 3 == 2 {
            (null(), null(), null())
        } else {
            let u = lengths[i % lengths.len()];
            (real(500000.0 + i as f64), t(u.0), u.1.clone())
        };
        let (v2, u2a, u2c) = if i % 2 == 0 {
            let u = angles[i % angles.len()];
            (real(-3.0 * i as f64), t(u.0), u.1.clone())
        } else {
            (null(), null(), null())
        };
        rows += ins(tx, "conversion", &format!("{BASE}, description, method_auth_name, method_code, param1_value, param1_uom_auth_name, param1_uom_code, param2_value, param2_uom_auth_name, param2_uom_code"),
            vec![t(k.0), k.1.clone(), t(format!("UTM zone {i}")), int(0), null(), t(m.0), m.1.clone(), v1, u1a, u1c, v2, u2a, u2c])?;
    }
    let projected = keys(15, 32600, 7);
    for (i, k) in projected.iter().enumerate() {
        let cs = system_of("Cartesian", 2);
        let g = &geodetic[i % geodetic.len()];
        let c = &conversions[i % conversions.len()];
        rows += ins(tx, "projected_crs", &format!("{BASE}, description, coordinate_system_auth_name, coordinate_system_code, geodetic_crs_auth_name, geodetic_crs_code, conversion_auth_name, conversion_code"),
            vec![t(k.0), k.1.clone(), t(format!("Projected CRS {i}")), int(0), t(format!("zone {i}")), t(cs.0), cs.1.clone(), t(g.0), g.1.clone(), t(c.0), c.1.clone()])?;
    }
    for (i, k) in keys(4, 9500, 2).iter().enumerate() {
        let h = &projected[i];
        let v = &vertical[i % vertical.len()];
        rows += ins(tx, "compound_crs", &format!("{BASE}, description, horiz_crs_auth_name, horiz_crs_code, vertical_crs_auth_name, vertical_crs_code"),
            vec![t(k.0), k.1.clone(), t(format!("Compound {i}")), int(0), null(), t(h.0), h.1.clone(), t(v.0), v.1.clone()])?;
    }
    let ops_cols = "description, method_auth_name, method_code, source_crs_auth_name, source_crs_code, target_crs_auth_name, target_crs_code, accuracy";
    let helmert = keys(8, 1100, 3);
    for (i, k) in helmert.iter().enumerate() {
        let (s, d) = (&geodetic[i], &geodetic[i + 1]);
        let m = &methods[i % methods.len()];
        let u = lengths[i % lengths.len()];
        rows += ins(
            tx,
            "helmert_transformation",
            &format!(
                "{BASE}, {ops_cols}, tx, ty, tz, translation_uom_auth_name, translation_uom_code"
            ),
            vec![
                t(k.0),
                k.1.clone(),
                t(format!("Helmert {i}")),
                int(0),
                null(),
                t(m.0),
                m.1.clone(),
                t(s.0),
                s.1.clone(),
                t(d.0),
                d.1.clone(),
                real(i as f64 / 4.0),
                real(-84.0 + i as f64),
                real(-107.5),
                real(-120.25 + i as f64),
                t(u.0),
                u.1.clone(),
            ],
        )?;
    }
    let grids = keys(6, 1500, 3);
    for (i, k) in grids.iter().enumerate() {
        let m = &methods[i % methods.len()];
        let (s, d) = (&geodetic[i + 2], &vertical[i % vertical.len()]);
        rows += ins(
            tx,
            "grid_transformation",
            &format!("{BASE}, {ops_cols}, grid_param_name, grid_name"),
            vec![
                t(k.0),
                k.1.clone(),
                t(format!("Grid {i}")),
                int(0),
                null(),
                t(m.0),
                m.1.clone(),
                t(s.0),
                s.1.clone(),
                t(d.0),
                d.1.clone(),
                if i % 2 == 0 { real(0.05) } else { null() },
                t("Geoid model file"),
                t(format!("grid_{i}.gtx")),
            ],
        )?;
    }
    for (i, k) in keys(4, 1600, 2).iter().enumerate() {
        let m = &methods[i % methods.len()];
        let (s, d) = (&projected[i], &projected[i + 1]);
        rows += ins(
            tx,
            "other_transformation",
            &format!("{BASE}, {ops_cols}"),
            vec![
                t(k.0),
                k.1.clone(),
                t(format!("Other op {i}")),
                int(0),
                null(),
                t(m.0),
                m.1.clone(),
                t(s.0),
                s.1.clone(),
                t(d.0),
                d.1.clone(),
                real(1.0 + i as f64),
            ],
        )?;
    }
    let concatenated = keys(4, 8000, 2);
    for (i, k) in concatenated.iter().enumerate() {
        let (s, d) = (&geodetic[i + 5], &geodetic[i + 6]);
        rows += ins(tx, "concatenated_operation", &format!("{BASE}, description, source_crs_auth_name, source_crs_code, target_crs_auth_name, target_crs_code, accuracy"),
            vec![t(k.0), k.1.clone(), t(format!("Chain {i}")), int(0), null(), t(s.0), s.1.clone(), t(d.0), d.1.clone(), null()])?;
        for step in 1..=3i64 {
            let h = &helmert[(i + step as usize) % helmert.len()];
            let dir = match step {
                1 => t("forward"),
                2 => t("reverse"),
                _ => null(),
            };
            rows += ins(tx, "concatenated_operation_step", "operation_auth_name, operation_code, step_number, step_auth_name, step_code, step_direction",
                vec![t(k.0), k.1.clone(), int(step), t(h.0), h.1.clone(), dir])?;
        }
    }
    for (i, k) in keys(3, 1700, 0).iter().enumerate() {
        let g = &grids[i];
        rows += ins(
            tx,
            "geoid_model",
            &format!("{BASE}, operation_auth_name, operation_code"),
            vec![
                t(k.0),
                k.1.clone(),
                t(format!("Geoid {i}")),
                int(0),
                t(g.0),
                g.1.clone(),
            ],
        )?;
    }
    for (i, k) in keys(3, 1800, 2).iter().enumerate() {
        let g = &geodetic[i];
        rows += ins(
            tx,
            "coordinate_metadata",
            &format!("{BASE}, crs_auth_name, crs_code, coordinate_epoch"),
            vec![
                t(k.0),
                k.1.clone(),
                t(format!("Metadata {i}")),
                int(0),
                t(g.0),
                g.1.clone(),
                if i == 0 {
                    null()
                } else {
                    real(2010.5 + i as f64)
                },
            ],
        )?;
    }
    let objects: [(&str, &[Key]); 3] = [
        ("geodetic_crs", &geodetic),
        ("projected_crs", &projected),
        ("helmert_transformation", &helmert),
    ];
    let mut n = 0;
    for (table, list) in objects {
        for o in list {
            let e = &extents[n % extents.len()];
            let sc = &scopes[n % scopes.len()];
            rows += ins(tx, "usage", "auth_name, code, object_table_name, object_auth_name, object_code, extent_auth_name, extent_code, scope_auth_name, scope_code",
                vec![t("EPSG"), code(13000, n, 9), t(table), t(o.0), o.1.clone(), t(e.0), e.1.clone(), t(sc.0), sc.1.clone()])?;
            n += 1;
        }
    }
    for (i, name) in [
        "proj-datumgrid",
        "proj-datumgrid-europe",
        "proj-datumgrid-oceania",
    ]
    .iter()
    .enumerate()
    {
        rows += ins(
            tx,
            "grid_packages",
            "package_name, description, url, direct_download, open_license",
            vec![
                t(*name),
                t(format!("grids {i}")),
                t(format!("https://download.example/{name}.zip")),
                int(1),
                int((i != 2) as i64),
            ],
        )?;
    }
    for i in 0..6 {
        let (package, url) = if i % 2 == 0 {
            (t("proj-datumgrid"), null())
        } else {
            (null(), t(format!("https://cdn.example/grid_{i}.tif")))
        };
        rows += ins(tx, "grid_alternatives", "original_grid_name, proj_grid_name, old_proj_grid_name, proj_grid_format, proj_method, inverse_direction, package_name, url, direct_download, open_license, directory",
            vec![t(format!("grid_{i}.gtx")), t(format!("xx_grid_{i}.tif")), null(), t(["GTiff", "GTX", "NTv2"][i % 3]), t(["geoid_like", "hgridshift", "vgridshift"][i % 3]), int((i % 2) as i64), package, url, int(1), int(1), null()])?;
    }
    let alias_tables = [
        ("unit_of_measure", &units),
        ("ellipsoid", &ellipsoids),
        ("geodetic_crs", &geodetic),
        ("projected_crs", &projected),
    ];
    for (i, (table, list)) in alias_tables.iter().enumerate() {
        for (j, o) in list.iter().take(5).enumerate() {
            rows += ins(
                tx,
                "alias_name",
                "table_name, auth_name, code, alt_name, source",
                vec![
                    t(*table),
                    t(o.0),
                    o.1.clone(),
                    t(format!("alias {i}.{j}")),
                    if j % 2 == 0 { t("ESRI") } else { null() },
                ],
            )?;
        }
    }
    for i in 0..4 {
        let (a, b) = (&helmert[i], &helmert[i + 4]);
        rows += ins(tx, "supersession", "superseded_table_name, superseded_auth_name, superseded_code, replacement_table_name, replacement_auth_name, replacement_code, source, same_source_target_crs",
            vec![t("helmert_transformation"), t(a.0), a.1.clone(), t("helmert_transformation"), t(b.0), b.1.clone(), t("EPSG"), int((i % 2) as i64)])?;
        let (d, r) = (&geodetic[i], &geodetic[i + 10]);
        rows += ins(tx, "deprecation", "table_name, deprecated_auth_name, deprecated_code, replacement_auth_name, replacement_code, source",
            vec![t("geodetic_crs"), t(d.0), d.1.clone(), t(r.0), r.1.clone(), t("EPSG")])?;
    }
    for (s, d, allowed) in [
        ("EPSG", "IGNF", "EPSG,IGNF"),
        ("IGNF", "EPSG", "IGNF"),
        ("ESRI", "EPSG", "ESRI,EPSG,PROJ"),
    ] {
        rows += ins(
            tx,
            "authority_to_authority_preference",
            "source_auth_name, target_auth_name, allowed_authorities",
            vec![t(s), t(d), t(allowed)],
        )?;
    }
    for (i, v) in ["9.8", "10.2", "11.4"].iter().enumerate() {
        rows += ins(
            tx,
            "versioned_auth_name_mapping",
            "auth_name, versioned_auth_name, version, priority",
            vec![
                t("EPSG"),
                t(format!("EPSG_{}", v.replace('.', "_"))),
                t(*v),
                int(i as i64),
            ],
        )?;
    }
    for i in 0..40usize {
        let day = 1 + (i * 37) % 28;
        let at = format!(
            "{}-{:02}-{:02} {:02}:{:02}:{:02}",
            2018 + i % 7,
            1 + i % 12,
            day,
            i % 24,
            (i * 7) % 60,
            (i * 13) % 60
        );
        let o = &geodetic[i % geodetic.len()];
        rows += ins(
            tx,
            "change_log",
            "id, at, table_name, auth_name, code, note, edited_at",
            vec![
                int(i as i64 + 1),
                t(at),
                t("geodetic_crs"),
                t(o.0),
                o.1.clone(),
                if i % 3 == 0 {
                    null()
                } else {
                    t(format!("change {i}"))
                },
                null(),
            ],
        )?;
    }
    let settings: Vec<(&str, Value)> = vec![
        ("colour", t("blue")),
        ("retries", int(5)),
        ("ratio", real(1.5)),
        ("salt", Value::Blob(vec![0, 255, 16, 32])),
        ("port", t("7")),
        ("empty", null()),
    ];
    for (k, v) in settings {
        rows += ins(tx, "settings", "key, value", vec![t(k), v])?;
    }
    Ok(rows)
}
