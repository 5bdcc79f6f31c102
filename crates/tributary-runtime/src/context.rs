//! What a running service gets: settings, the readiness registry, the
//! shutdown token, and the backends, each connected once on first use and
//! registered for `/readyz`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Context as _;
use tokio::sync::OnceCell;
use tributary_bus::{Bus, BusHealth};
use tributary_platform::{CancellationToken, Readiness};
use tributary_storage::{Cache, Database, Objects};

use crate::settings::Settings;

/// Shared by every service of a process.
pub struct Context {
    /// Effective settings (platform part and every system's section).
    pub settings: Arc<Settings>,
    /// Readiness checks of this process.
    pub readiness: Readiness,
    /// Cancelled on SIGINT/SIGTERM.
    pub shutdown: CancellationToken,
    bus: OnceCell<Bus>,
    bus_in_readiness: AtomicBool,
    db: OnceCell<Database>,
    objects: OnceCell<Objects>,
    cache: OnceCell<Cache>,
}

impl Context {
    /// A context with no backend connected yet.
    pub fn new(settings: Settings, shutdown: CancellationToken) -> Self {
        Self {
            settings: Arc::new(settings),
            readiness: Readiness::default(),
            shutdown,
            bus: OnceCell::new(),
            bus_in_readiness: AtomicBool::new(false),
            db: OnceCell::new(),
            objects: OnceCell::new(),
            cache: OnceCell::new(),
        }
    }

    /// The settings section of type `T` (a system's own, e.g. `ChatSettings`).
    pub fn section<T: Default + Send + Sync + 'static>(&self) -> Arc<T> {
        self.settings.section::<T>()
    }

    /// The event bus (connected on first call), registered for `/readyz`.
    pub async fn bus(&self) -> anyhow::Result<Bus> {
        let bus = self.bus_unchecked().await?;
        if !self.bus_in_readiness.swap(true, Ordering::SeqCst) {
            self.readiness.register(Arc::new(BusHealth(bus.clone())));
        }
        Ok(bus)
    }

    /// The same event bus, without making it a readiness dependency (for
    /// best-effort users such as the audit shipper).
    pub async fn bus_unchecked(&self) -> anyhow::Result<Bus> {
        self.bus
            .get_or_try_init(|| async {
                let url = self.settings.bus_url();
                let bus = tributary_bus::connect(&url, &self.settings.bus)
                    .await
                    .context("cannot open the event bus")?;
                tracing::info!(bus = %bus.describe(), "event bus connected");
                Ok(bus)
            })
            .await
            .cloned()
    }

    /// The SQL database (connected on first call).
    pub async fn db(&self) -> anyhow::Result<Database> {
        self.db
            .get_or_try_init(|| async {
                let url = self.settings.sql_url();
                let db = Database::connect(&url, &self.settings.sql_config())
                    .await
                    .context("cannot open the SQL database")?;
                tracing::info!(sql = %db.redacted_url(), "SQL database connected");
                self.readiness.register(Arc::new(db.clone()));
                Ok(db)
            })
            .await
            .cloned()
    }

    /// The object store (opened on first call).
    pub async fn objects(&self) -> anyhow::Result<Objects> {
        self.objects
            .get_or_try_init(|| async {
                let objects = Objects::open(&self.settings.objects_config())
                    .context("cannot open the object store")?;
                objects
                    .ping()
                    .await
                    .context("the object store does not answer")?;
                tracing::info!(objects = %objects.redacted_url(), "object store opened");
                self.readiness.register(Arc::new(objects.clone()));
                Ok(objects)
            })
            .await
            .cloned()
    }

    /// The cache (connected on first call).
    pub async fn cache(&self) -> anyhow::Result<Cache> {
        self.cache
            .get_or_try_init(|| async {
                let cache = Cache::connect(&self.settings.cache_config())
                    .await
                    .context("cannot open the cache")?;
                tracing::info!(cache = %tributary_platform::url::redact(&self.settings.cache.url), "cache connected");
                self.readiness.register(Arc::new(cache.clone()));
                Ok(cache)
            })
            .await
            .cloned()
    }
}
