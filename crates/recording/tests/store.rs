//! The store contract on both back-ends the design relies on: a real S3 server (`moto_server`,
//! one per test, its own bucket) and the local filesystem (a temporary directory). Each test
//! runs on both through `contract!`. The S3 half is skipped when `moto_server` is not installed.

use futures::TryStreamExt as _;
use onair_recording::layout::{InitName, Rel, Rendition, Root, SegmentName, Session};
use onair_recording::object_store::path::Path;
use onair_recording::object_store::{ObjectStore, ObjectStoreExt as _, PutPayload};
use onair_recording::plan::{self, Object};
use onair_recording::{Store, StoreConfig, delete_prefix, open, store};
use onair_testkit::s3::S3Server;
use url::Url;
use uuid::Uuid;

type Res<T = ()> = Result<T, Box<dyn std::error::Error>>;

/// A store on a fresh bucket of `s3`.
fn s3_store(s3: &S3Server) -> Res<Store> {
    let bucket = s3.bucket().map_err(|e| e.to_string())?;
    let mut config = StoreConfig::new(Url::parse(&format!("s3://{bucket}/some/prefix"))?);
    config.endpoint = Some(s3.endpoint().to_owned());
    config.access_key_id = Some("test".into());
    config.secret_access_key = Some("test".into());
    Ok(open(&config)?)
}

/// A local store in a temporary directory that does not exist yet (`open` creates it).
fn local() -> Res<(tempfile::TempDir, Store)> {
    let dir = tempfile::tempdir()?;
    let url = Url::from_file_path(dir.path().join("recordings")).map_err(|()| "temp dir not absolute")?;
    let store = open(&StoreConfig::new(url))?;
    Ok((dir, store))
}

/// Instantiates each contract test for moto and the local filesystem.
macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod moto {
            $(
                #[tokio::test]
                async fn $name() -> super::Res {
                    let Some(s3) = onair_testkit::s3::S3Server::start().map_err(|e| e.to_string())? else {
                        return Ok(());
                    };
                    super::$name(&*super::s3_store(&s3)?).await
                }
            )*
        }
        mod local_fs {
            $(
                #[tokio::test]
                async fn $name() -> super::Res {
                    let (_dir, store) = super::local()?;
                    super::$name(&*store).await
                }
            )*
        }
    };
}

contract!(
    put_get_head,
    list_is_by_whole_path_segments,
    list_with_offset_starts_after,
    delete_prefix_is_idempotent,
    plan_over_a_real_listing
);

const T0: u64 = 1_764_000_000_000;

fn rendition(s: &str) -> Rendition {
    Rendition::parse(s).expect("valid rendition in test")
}

fn segment(msn: u64) -> SegmentName {
    SegmentName {
        pdt_ms: T0 + msn * 1000,
        session: Session(T0),
        msn,
        duration_us: 1_000_000,
        init_version: 0,
        discontinuity: false,
    }
}

async fn put(store: &dyn ObjectStore, key: &Path, bytes: &'static [u8]) -> Res {
    store.put(key, PutPayload::from_static(bytes)).await?;
    Ok(())
}

async fn keys(store: &dyn ObjectStore, prefix: &Path) -> Res<Vec<String>> {
    let mut keys: Vec<String> = store.list(Some(prefix)).map_ok(|m| m.location.to_string()).try_collect().await?;
    keys.sort();
    Ok(keys)
}

async fn put_get_head(store: &dyn ObjectStore) -> Res {
    let root = Root::Recording(Uuid::new_v4());
    let key = store::path(&root, &Rel::Segment(rendition("360p"), segment(0)));
    put(store, &key, b"moof mdat").await?;
    assert_eq!(store.get(&key).await?.bytes().await?.as_ref(), b"moof mdat");
    assert_eq!(store.head(&key).await?.size, 9);
    // Keys never change content, so a repeated upload (a retry after a timeout) is harmless.
    put(store, &key, b"moof mdat").await?;
    let missing = store.get(&store::path(&root, &Rel::Master)).await;
    assert!(matches!(missing, Err(object_store::Error::NotFound { .. })), "{missing:?}");
    Ok(())
}

async fn list_is_by_whole_path_segments(store: &dyn ObjectStore) -> Res {
    let a = Root::Clip(Uuid::from_u128(0xa));
    let a_key = store::path(&a, &Rel::Thumb);
    // Another id that shares `a`'s text as a prefix: `clips/<a>x/...` must not be listed.
    let sibling = Path::from(format!("{a}x/thumb.jpg"));
    put(store, &a_key, b"jpg").await?;
    put(store, &sibling, b"jpg").await?;
    assert_eq!(keys(store, &store::root_path(&a)).await?, [a_key.to_string()]);
    Ok(())
}

async fn list_with_offset_starts_after(store: &dyn ObjectStore) -> Res {
    // The DVR rebuild: everything of a rendition since a time.
    let root = Root::Recording(Uuid::new_v4());
    let r = rendition("720p");
    for msn in 0..5 {
        put(store, &store::path(&root, &Rel::Segment(r.clone(), segment(msn))), b"s").await?;
    }
    let seg = Path::from(format!("{root}/{r}/seg"));
    let since = Path::from(format!("{seg}/{:013}", T0 + 3000));
    let mut got: Vec<u64> = store
        .list_with_offset(Some(&seg), &since)
        .map_ok(|m| Rel::parse(m.location.as_ref().trim_start_matches(&format!("{root}/"))))
        .try_collect::<Vec<_>>()
        .await?
        .into_iter()
        .map(|rel| match rel {
            Ok(Rel::Segment(_, name)) => name.msn,
            other => panic!("unexpected key {other:?}"),
        })
        .collect();
    got.sort();
    assert_eq!(got, [3, 4]);
    Ok(())
}

async fn delete_prefix_is_idempotent(store: &dyn ObjectStore) -> Res {
    let gone = Root::Recording(Uuid::new_v4());
    let kept = Root::Recording(Uuid::new_v4());
    let r = rendition("source");
    for root in [gone, kept] {
        put(store, &store::path(&root, &Rel::Master), b"#EXTM3U").await?;
        put(store, &store::path(&root, &Rel::Init(r.clone(), InitName { session: Session(T0), version: 0 })), b"i")
            .await?;
        for msn in 0..3 {
            put(store, &store::path(&root, &Rel::Segment(r.clone(), segment(msn))), b"s").await?;
        }
    }
    assert_eq!(delete_prefix(store, &store::root_path(&gone)).await?, 5);
    assert!(keys(store, &store::root_path(&gone)).await?.is_empty());
    assert_eq!(keys(store, &store::root_path(&kept)).await?.len(), 5);
    // A second sweep (or one racing another replica) finds nothing and is not an error.
    assert_eq!(delete_prefix(store, &store::root_path(&gone)).await?, 0);
    Ok(())
}

async fn plan_over_a_real_listing(store: &dyn ObjectStore) -> Res {
    let root = Root::Recording(Uuid::new_v4());
    for (r, n) in [("720p", 10), ("360p", 10), ("240p", 3)] {
        for msn in 0..n {
            put(store, &store::path(&root, &Rel::Segment(rendition(r), segment(msn))), b"0123456789").await?;
        }
    }
    put(store, &store::path(&root, &Rel::Thumbnail(T0)), b"jpg").await?;
    let strip = format!("{root}/");
    let objects: Vec<Object> = store
        .list(Some(&store::root_path(&root)))
        .map_ok(|m| Object { key: m.location.as_ref().trim_start_matches(&strip).to_string(), size: m.size })
        .try_collect()
        .await?;
    let plan = plan::vod(&objects);
    let kept: Vec<&str> = plan.renditions.iter().map(|r| r.rendition.as_str()).collect();
    assert_eq!(kept, ["360p", "720p"]);
    assert_eq!(plan.excluded, [rendition("240p")]);
    assert_eq!((plan.duration.as_secs(), plan.bytes, plan.discontinuities), (10, 200, 0));
    assert!(plan.unknown.is_empty(), "{:?}", plan.unknown);
    Ok(())
}
