//! Migrations that move data: a database made by an earlier release keeps it.

use std::path::{Path, PathBuf};

use domain::ports::FleetStore as _;
use domain::{FixSource, Vehicle};
use storage::{PgOptions, PgStore, SqliteOptions, SqliteStore};

/// A copy of the migrations in `dir` numbered below `first_new`: what an earlier release
/// shipped.
fn earlier_migrations(dir: &str, first_new: u32, into: &Path) -> PathBuf {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let target = into.join("earlier");
    std::fs::create_dir_all(&target).unwrap();
    for entry in std::fs::read_dir(&source).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let version: u32 = name.split('_').next().unwrap().parse().unwrap();
        if version < first_new {
            std::fs::copy(&path, target.join(&name)).unwrap();
        }
    }
    target
}

const PROVIDER: &str = "0193a0d0-0000-7000-8000-000000000001";
const REPORTED: &str = "0193a0d0-0000-7000-8000-0000000000a1";
const SILENT: &str = "0193a0d0-0000-7000-8000-0000000000a2";

/// The two vehicles after the upgrade: the one that had reported keeps its position,
/// the other still has none.
fn assert_positions_kept(vehicles: &[Vehicle]) {
    assert_eq!(vehicles.len(), 2, "{vehicles:?}");
    let reported = vehicles.iter().find(|v| v.vehicle_id == "T1").unwrap();
    let fix = reported
        .last_fix
        .as_ref()
        .expect("the reported position is kept");
    assert_eq!((fix.position.lat(), fix.position.lon()), (31.23, 121.47));
    assert_eq!(fix.ts.to_rfc3339(), "2026-12-01T08:00:00.250+00:00");
    assert_eq!(fix.speed_kmh, Some(42.5));
    assert_eq!(fix.heading, Some(90.0));
    assert_eq!(fix.accuracy_m, None);
    assert_eq!(fix.source, FixSource::Jt808);
    let silent = vehicles.iter().find(|v| v.vehicle_id == "T2").unwrap();
    assert!(silent.last_fix.is_none(), "{silent:?}");
}

#[tokio::test]
async fn sqlite_latest_positions_survive_the_move_to_their_own_table() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("rescue.db").display());
    {
        let pool = sqlx::sqlite::SqlitePoolOptions::new()
            .connect_with(
                url.parse::<sqlx::sqlite::SqliteConnectOptions>()
                    .unwrap()
                    .create_if_missing(true),
            )
            .await
            .unwrap();
        let earlier = earlier_migrations("../migrations/sqlite", 8, dir.path());
        sqlx::migrate::Migrator::new(earlier.as_path())
            .await
            .unwrap()
            .run(&pool)
            .await
            .unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "INSERT INTO providers (id, name, api_key_hash, created_at) \
             VALUES (unhex(replace('{PROVIDER}', '-', '')), 'P', x'01', '2026-12-01T00:00:00+00:00'); \
             INSERT INTO vehicles (id, provider_id, external_id, capabilities, state, last_lat, last_lon, \
             last_fix_at, last_speed_kmh, last_heading_deg, last_accuracy_m, last_fix_source, created_at, updated_at) \
             VALUES (unhex(replace('{REPORTED}', '-', '')), unhex(replace('{PROVIDER}', '-', '')), 'T1', '[\"tow\"]', \
             'available', 31.23, 121.47, '2026-12-01T08:00:00.250+00:00', 42.5, 90.0, NULL, 'jt808', \
             '2026-12-01T00:00:00+00:00', '2026-12-01T00:00:00+00:00'); \
             INSERT INTO vehicles (id, provider_id, external_id, capabilities, state, created_at, updated_at) \
             VALUES (unhex(replace('{SILENT}', '-', '')), unhex(replace('{PROVIDER}', '-', '')), 'T2', '[\"tow\"]', \
             'offline', '2026-12-01T00:00:00+00:00', '2026-12-01T00:00:00+00:00');"
        )))
        .execute(&pool)
        .await
        .unwrap();
        pool.close().await;
    }
    let store = SqliteStore::connect(&SqliteOptions::new(url))
        .await
        .unwrap();
    assert_positions_kept(&store.list_vehicles().await.unwrap());
    store.close().await;
}

#[tokio::test]
async fn postgres_latest_positions_survive_the_move_to_their_own_table() {
    let url = storage::testing::postgres_url();
    let schema = storage::testing::unique_schema();
    let dir = tempfile::tempdir().unwrap();
    let options: sqlx::postgres::PgConnectOptions = url.parse().unwrap();
    let admin = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect_with(options.clone())
        .await
        .unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&admin)
        .await
        .unwrap();
    {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .connect_with(options.options([("search_path", schema.as_str())]))
            .await
            .unwrap();
        let earlier = earlier_migrations("../migrations/postgres", 7, dir.path());
        sqlx::migrate::Migrator::new(earlier.as_path())
            .await
            .unwrap()
            .run(&pool)
            .await
            .unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "INSERT INTO providers (id, name, api_key_hash, created_at) \
             VALUES ('{PROVIDER}', 'P', '\\x01', '2026-12-01T00:00:00Z'); \
             INSERT INTO vehicles (id, provider_id, external_id, capabilities, state, last_lat, last_lon, \
             last_fix_at, last_speed_kmh, last_heading_deg, last_accuracy_m, last_fix_source, created_at, updated_at) \
             VALUES ('{REPORTED}', '{PROVIDER}', 'T1', '[\"tow\"]', 'available', 31.23, 121.47, \
             '2026-12-01T08:00:00.250Z', 42.5, 90.0, NULL, 'jt808', '2026-12-01T00:00:00Z', '2026-12-01T00:00:00Z'); \
             INSERT INTO vehicles (id, provider_id, external_id, capabilities, state, created_at, updated_at) \
             VALUES ('{SILENT}', '{PROVIDER}', 'T2', '[\"tow\"]', 'offline', '2026-12-01T00:00:00Z', '2026-12-01T00:00:00Z');"
        )))
        .execute(&pool)
        .await
        .unwrap();
        pool.close().await;
    }
    let mut store_options = PgOptions::new(url);
    store_options.schema = Some(schema.clone());
    let store = PgStore::connect(&store_options).await.unwrap();
    let vehicles = store.list_vehicles().await;
    store.close().await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
        .execute(&admin)
        .await
        .unwrap();
    assert_positions_kept(&vehicles.unwrap());
}

/// A copy of PostgreSQL's migrations as they were numbered before the numbers were aligned
/// with SQLite's: 0001–0006 as today, and `vehicle_positions` as 0007 (the file that
/// release shipped, kept in `tests/fixtures`).
fn postgres_migrations_numbered_before_the_alignment(into: &Path) -> PathBuf {
    let target = earlier_migrations("../migrations/postgres", 7, into);
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/postgres_0007_vehicle_positions.sql"),
        target.join("0007_vehicle_positions.sql"),
    )
    .unwrap();
    target
}

/// `(version, description, checksum, success)` of every applied migration.
async fn applied_migrations(pool: &sqlx::PgPool) -> Vec<(i64, String, Vec<u8>, bool)> {
    sqlx::query_as(
        "SELECT version, description, checksum, success FROM _sqlx_migrations ORDER BY version",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

async fn installed_on(pool: &sqlx::PgPool, version: i64) -> chrono::DateTime<chrono::Utc> {
    sqlx::query_scalar("SELECT installed_on FROM _sqlx_migrations WHERE version = $1")
        .bind(version)
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn postgres_a_database_migrated_with_the_old_numbering_starts_with_its_data() {
    let url = storage::testing::postgres_url();
    let schema = storage::testing::unique_schema();
    let dir = tempfile::tempdir().unwrap();
    let options: sqlx::postgres::PgConnectOptions = url.parse().unwrap();
    let admin = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect_with(options.clone())
        .await
        .unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&admin)
        .await
        .unwrap();
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect_with(options.options([("search_path", schema.as_str())]))
        .await
        .unwrap();
    let old = postgres_migrations_numbered_before_the_alignment(dir.path());
    sqlx::migrate::Migrator::new(old.as_path())
        .await
        .unwrap()
        .run(&pool)
        .await
        .unwrap();
    let before = applied_migrations(&pool).await;
    let installed_as_7 = installed_on(&pool, 7).await;
    assert_eq!(
        before
            .iter()
            .map(|m| (m.0, m.1.as_str()))
            .collect::<Vec<_>>()
            .last(),
        Some(&(7, "vehicle positions")),
        "the old numbering: {before:?}"
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "INSERT INTO providers (id, name, api_key_hash, created_at) \
         VALUES ('{PROVIDER}', 'P', '\\x01', '2026-12-01T00:00:00Z'); \
         INSERT INTO vehicles (id, provider_id, external_id, capabilities, state, created_at, updated_at) \
         VALUES ('{REPORTED}', '{PROVIDER}', 'T1', '[\"tow\"]', 'available', '2026-12-01T00:00:00Z', '2026-12-01T00:00:00Z'), \
                ('{SILENT}', '{PROVIDER}', 'T2', '[\"tow\"]', 'offline', '2026-12-01T00:00:00Z', '2026-12-01T00:00:00Z'); \
         INSERT INTO vehicle_positions (vehicle_id, lat, lon, fix_at, speed_kmh, heading_deg, accuracy_m, source) \
         VALUES ('{REPORTED}', 31.23, 121.47, '2026-12-01T08:00:00.250Z', 42.5, 90.0, NULL, 'jt808');"
    )))
    .execute(&pool)
    .await
    .unwrap();

    // The new code starts on it, twice (the second start finds nothing to renumber).
    let mut store_options = PgOptions::new(url);
    store_options.schema = Some(schema.clone());
    for _ in 0..2 {
        let store = PgStore::connect(&store_options).await.unwrap();
        assert_positions_kept(&store.list_vehicles().await.unwrap());
        store.close().await;
    }

    // Every migration of today's folder is recorded as applied, under today's numbers.
    let current = sqlx::migrate::Migrator::new(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../migrations/postgres")
            .as_path(),
    )
    .await
    .unwrap();
    let expected: Vec<(i64, String, Vec<u8>, bool)> = current
        .iter()
        .map(|m| {
            (
                m.version,
                m.description.to_string(),
                m.checksum.to_vec(),
                true,
            )
        })
        .collect();
    assert_eq!(expected.len(), 8);
    let after = applied_migrations(&pool).await;
    assert_eq!(after, expected);
    // The record of vehicle_positions moved, it was not made anew.
    assert_eq!(after[7].2, before[6].2);
    assert_eq!(installed_on(&pool, 8).await, installed_as_7);
    pool.close().await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
        .execute(&admin)
        .await
        .unwrap();
}

#[test]
fn the_renumbered_vehicle_positions_migration_is_the_released_file() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let released =
        std::fs::read(root.join("tests/fixtures/postgres_0007_vehicle_positions.sql")).unwrap();
    let now =
        std::fs::read(root.join("../migrations/postgres/0008_vehicle_positions.sql")).unwrap();
    assert!(
        released == now,
        "migrations/postgres/0008_vehicle_positions.sql must stay byte for byte the file released as \
         0007: databases recorded its checksum, and PgStore::connect renumbers them only on a match"
    );
}
