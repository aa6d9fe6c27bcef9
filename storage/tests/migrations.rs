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
    let Some(url) = storage::testing::postgres_url() else {
        return;
    };
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
