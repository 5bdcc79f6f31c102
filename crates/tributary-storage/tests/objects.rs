//! Conformance scenarios of the object store port, each written once and run
//! against a local directory (always) and S3 (when the rig provides it).
#![allow(clippy::unwrap_used)]

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use tokio::io::AsyncWriteExt;
use tributary_platform::health::HealthCheck;
use tributary_storage::{Error, Objects, ObjectsConfig};
use tributary_testkit::{backend, unique, Backend};

/// The bucket the rig creates on its S3 server.
const BUCKET: &str = "tributary-test";
const MIB: usize = 1024 * 1024;

/// A store in a fresh temporary directory (removed when the returned guard drops).
fn local() -> Option<(Objects, Option<tempfile::TempDir>)> {
    let dir = tributary_testkit::temp_dir();
    let url = format!("file://{}", dir.path().join("objects").display());
    let objects = Objects::open(&ObjectsConfig::from_url(url)).unwrap();
    Some((objects, Some(dir)))
}

/// A store under a unique prefix of the rig's bucket, or `None` outside the rig.
fn s3() -> Option<(Objects, Option<tempfile::TempDir>)> {
    let endpoint = backend(Backend::S3)?;
    let config = ObjectsConfig {
        url: format!("s3://{BUCKET}/{}", unique("objects")),
        endpoint: Some(endpoint),
        region: Some("us-east-1".into()),
        access_key_id: Some("k".into()),
        secret_access_key: Some("s".into()),
        allow_http: true,
    };
    Some((Objects::open(&config).unwrap(), None))
}

/// `len` bytes of a deterministic, non-repeating pattern.
fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

async fn put_get_list_delete(store: Objects) {
    // Proves: put/get round-trips bytes, overwrite replaces, list is by path prefix and sorted, delete is idempotent.
    store
        .put("docs/a.json", Bytes::from_static(b"{\"a\":1}"))
        .await
        .unwrap();
    store.put("docs/b.json", b"first".to_vec()).await.unwrap();
    store.put("docs/b.json", b"second".to_vec()).await.unwrap();
    store
        .put("docs/sub/c.bin", vec![0u8, 1, 2, 255])
        .await
        .unwrap();
    store.put("docsx/d.txt", "outside").await.unwrap();

    assert_eq!(store.get("docs/a.json").await.unwrap(), &b"{\"a\":1}"[..]);
    assert_eq!(store.get("docs/b.json").await.unwrap(), &b"second"[..]);
    assert_eq!(store.head("docs/sub/c.bin").await.unwrap().size, 4);

    let keys: Vec<_> = store
        .list("docs")
        .await
        .unwrap()
        .into_iter()
        .map(|o| (o.key, o.size))
        .collect();
    assert_eq!(
        keys,
        vec![
            ("docs/a.json".to_string(), 7),
            ("docs/b.json".to_string(), 6),
            ("docs/sub/c.bin".to_string(), 4),
        ]
    );
    assert_eq!(store.list("").await.unwrap().len(), 4);
    assert!(store.list("nothing/here").await.unwrap().is_empty());

    store.delete("docs/a.json").await.unwrap();
    store.delete("docs/a.json").await.unwrap();
    let err = store.get("docs/a.json").await.unwrap_err();
    assert!(err.is_not_found(), "{err}");
    assert!(store.head("docs/a.json").await.unwrap_err().is_not_found());
    assert_eq!(store.list("docs").await.unwrap().len(), 2);
}

async fn large_object_multipart(store: Objects) {
    // Proves: a 20 MiB object uploaded in 5 MiB parts from a stream, and one from an AsyncWrite, read back byte-identical.
    let data = Bytes::from(pattern(20 * MIB, 7));
    // Chunks deliberately not aligned with the part size.
    let chunks: Vec<Result<Bytes, std::io::Error>> = data
        .chunks(3 * MIB / 2 + 17)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    let written = store
        .put_stream(
            "big/stream.bin",
            futures::stream::iter(chunks),
            Some(5 * MIB),
        )
        .await
        .unwrap();
    assert_eq!(written, data.len() as u64);
    assert_eq!(
        store.head("big/stream.bin").await.unwrap().size,
        data.len() as u64
    );

    let mut read = Vec::with_capacity(data.len());
    let mut stream = store.get_stream("big/stream.bin").await.unwrap();
    while let Some(chunk) = stream.next().await {
        read.extend_from_slice(&chunk.unwrap());
    }
    assert!(read == data, "streamed read differs from what was written");

    let mut writer = store.writer("big/writer.bin", Some(5 * MIB)).unwrap();
    for chunk in data.chunks(MIB + 3) {
        writer.write_all(chunk).await.unwrap();
    }
    writer.shutdown().await.unwrap();
    let whole = store.get("big/writer.bin").await.unwrap();
    assert!(whole == data, "writer read differs from what was written");
}

async fn failed_stream_stores_nothing(store: Objects) {
    // Proves: a multipart upload whose source fails is aborted and leaves no (or the old) object.
    store.put("partial.bin", "old").await.unwrap();
    let chunks = vec![
        Ok(Bytes::from(pattern(6 * MIB, 3))),
        Err(std::io::Error::other("source broke")),
    ];
    let err = store
        .put_stream("partial.bin", futures::stream::iter(chunks), Some(5 * MIB))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("source broke"), "{err}");
    assert_eq!(store.get("partial.bin").await.unwrap(), &b"old"[..]);
}

async fn prefixes_isolate(store: Objects) {
    // Proves: handles with different prefixes on one store do not see each other's objects.
    let a = store.with_prefix("tenant-a").unwrap();
    let b = store.with_prefix("tenant-b/").unwrap();
    a.put("k", "from a").await.unwrap();
    b.put("k", "from b").await.unwrap();
    assert_eq!(a.get("k").await.unwrap(), &b"from a"[..]);
    assert_eq!(b.get("k").await.unwrap(), &b"from b"[..]);
    assert_eq!(a.list("").await.unwrap().len(), 1);
    let all: Vec<_> = store
        .list("")
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.key)
        .collect();
    assert_eq!(all, vec!["tenant-a/k", "tenant-b/k"]);
    a.delete("k").await.unwrap();
    assert_eq!(b.get("k").await.unwrap(), &b"from b"[..]);
}

async fn bad_keys_are_rejected(store: Objects) {
    // Proves: empty keys and `..` segments are refused before any request.
    for key in ["", "/", "a/../b", "a//b"] {
        let err = store.put(key, "x").await.unwrap_err();
        assert!(matches!(err, Error::InvalidKey { .. }), "{key:?}: {err}");
    }
}

async fn readiness_answers(store: Objects) {
    // Proves: the readiness check passes against a reachable store.
    assert_eq!(store.name(), "objects");
    store.check().await.unwrap();
    // Listing objects via a stream works on an empty prefix too.
    let listed: Vec<_> = futures::stream::iter(store.list("").await.unwrap())
        .map(Ok::<_, Error>)
        .try_collect()
        .await
        .unwrap();
    assert!(listed.is_empty());
}

async fn rename_moves_and_replaces(store: Objects) {
    // Proves: rename moves an object (the source is gone), replaces an existing target, and a missing source is NotFound.
    store.put("tmp/a", b"new".to_vec()).await.unwrap();
    store.put("final/b", b"old".to_vec()).await.unwrap();
    store.rename("tmp/a", "final/b").await.unwrap();
    assert_eq!(&store.get("final/b").await.unwrap()[..], b"new");
    assert!(matches!(
        store.get("tmp/a").await,
        Err(Error::NotFound { .. })
    ));
    store.rename("final/b", "other/dir/c").await.unwrap();
    assert_eq!(&store.get("other/dir/c").await.unwrap()[..], b"new");
    let err = store.rename("tmp/missing", "final/x").await.unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
}

macro_rules! run_on {
    ($adapter:ident: $($scenario:ident),+ $(,)?) => {
        mod $adapter {
            $(
                // Runs the scenario of the same name (see its first line) on this adapter.
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    let Some((store, _guard)) = super::$adapter() else { return };
                    super::$scenario(store).await;
                }
            )+
        }
    };
}

run_on!(local: put_get_list_delete, large_object_multipart, failed_stream_stores_nothing, prefixes_isolate, bad_keys_are_rejected, readiness_answers, rename_moves_and_replaces);
run_on!(s3: put_get_list_delete, large_object_multipart, failed_stream_stores_nothing, prefixes_isolate, bad_keys_are_rejected, readiness_answers, rename_moves_and_replaces);

#[test]
fn unknown_scheme_and_secrets_stay_hidden() {
    // Proves: unsupported URLs are rejected and Debug of the config never prints the secret.
    let err = Objects::open(&ObjectsConfig::from_url("gs://bucket")).unwrap_err();
    assert!(matches!(err, Error::UnsupportedScheme { .. }), "{err}");
    let err = Objects::open(&ObjectsConfig::from_url("s3://")).unwrap_err();
    assert!(matches!(err, Error::InvalidUrl { .. }), "{err}");
    let cfg = ObjectsConfig {
        secret_access_key: Some("topsecret".into()),
        ..ObjectsConfig::from_url("s3://b")
    };
    assert!(!format!("{cfg:?}").contains("topsecret"));
}
