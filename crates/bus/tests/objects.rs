//! Object store and key-value buckets against a real server.

mod common;

use citychain_bus::BusError;
use common::{connect_to, setup};

#[tokio::test]
async fn objects_put_get_list_and_exist() {
    let (_server, bus, streams) = setup().await;
    let bucket = streams.object_bucket("records").unwrap();
    let objects = bus.object_store(&bucket, 1).await.unwrap();
    assert_eq!(objects.bucket(), "CITYCHAIN_test-chain_records");

    assert_eq!(objects.list_names().await.unwrap(), Vec::<String>::new());
    assert_eq!(objects.get("missing").await.unwrap(), None);
    assert!(!objects.exists("missing").await.unwrap());

    // Larger than one 128 KiB chunk, so reading reassembles chunks.
    let large: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    objects.put("b/large", &large).await.unwrap();
    objects.put("a.small", b"sealed bytes").await.unwrap();
    objects.put("empty", b"").await.unwrap();

    assert_eq!(
        objects.get("b/large").await.unwrap().as_deref(),
        Some(&large[..])
    );
    assert_eq!(
        objects.get("a.small").await.unwrap().as_deref(),
        Some(&b"sealed bytes"[..])
    );
    assert_eq!(
        objects.get("empty").await.unwrap().as_deref(),
        Some(&b""[..])
    );
    assert!(objects.exists("a.small").await.unwrap());
    assert_eq!(
        objects.list_names().await.unwrap(),
        vec!["a.small", "b/large", "empty"]
    );
}

#[tokio::test]
async fn putting_the_same_bytes_again_writes_nothing() {
    let (_server, bus, streams) = setup().await;
    let objects = bus
        .object_store(&streams.object_bucket("records").unwrap(), 1)
        .await
        .unwrap();
    let backing = format!("OBJ_{}", objects.bucket());

    objects.put("r1", b"payload").await.unwrap();
    let after_first = bus.stream_state(&backing).await.unwrap().last_sequence;
    objects.put("r1", b"payload").await.unwrap();
    let after_second = bus.stream_state(&backing).await.unwrap().last_sequence;
    assert_eq!(
        after_first, after_second,
        "an identical put published again"
    );

    // Different bytes under the same name replace the object.
    objects.put("r1", b"payload v2").await.unwrap();
    assert_eq!(
        objects.get("r1").await.unwrap().as_deref(),
        Some(&b"payload v2"[..])
    );
    // Same length, different bytes: replaced too, not mistaken for a repeat.
    objects.put("r1", b"PAYLOAD V2").await.unwrap();
    assert_eq!(
        objects.get("r1").await.unwrap().as_deref(),
        Some(&b"PAYLOAD V2"[..])
    );
    assert_eq!(objects.list_names().await.unwrap(), vec!["r1"]);
}

#[tokio::test]
async fn a_second_connection_gets_the_existing_bucket_and_its_objects() {
    let (server, bus, streams) = setup().await;
    let bucket = streams.object_bucket("records").unwrap();
    bus.object_store(&bucket, 1)
        .await
        .unwrap()
        .put("r1", b"kept")
        .await
        .unwrap();

    let other = connect_to(&server).await;
    let objects = other.object_store(&bucket, 1).await.unwrap();
    assert_eq!(
        objects.get("r1").await.unwrap().as_deref(),
        Some(&b"kept"[..])
    );
}

#[tokio::test]
async fn kv_create_never_overwrites() {
    let (server, bus, streams) = setup().await;
    let bucket = streams.kv_bucket("record-keys").unwrap();
    let kv = bus.kv(&bucket, 1).await.unwrap();
    assert_eq!(kv.bucket(), "CITYCHAIN_test-chain_record-keys");

    assert_eq!(kv.get("r1").await.unwrap(), None);
    assert!(kv.create("r1", b"first").await.unwrap());
    assert!(!kv.create("r1", b"second").await.unwrap());
    assert_eq!(kv.get("r1").await.unwrap().as_deref(), Some(&b"first"[..]));

    // A second replica on its own connection loses too.
    let other = connect_to(&server).await.kv(&bucket, 1).await.unwrap();
    assert!(!other.create("r1", b"third").await.unwrap());
    assert_eq!(
        other.get("r1").await.unwrap().as_deref(),
        Some(&b"first"[..])
    );

    assert!(other.create("r2", b"").await.unwrap());
    assert_eq!(kv.get("r2").await.unwrap().as_deref(), Some(&b""[..]));
}

#[tokio::test]
async fn concurrent_creates_have_exactly_one_winner() {
    let (server, bus, streams) = setup().await;
    let bucket = streams.kv_bucket("record-keys").unwrap();
    let mut tasks = Vec::new();
    for replica in 0..8u8 {
        let bus = if replica % 2 == 0 {
            bus.clone()
        } else {
            connect_to(&server).await
        };
        let bucket = bucket.clone();
        tasks.push(tokio::spawn(async move {
            let kv = bus.kv(&bucket, 1).await.unwrap();
            (replica, kv.create("contested", &[replica]).await.unwrap())
        }));
    }
    let mut winners = Vec::new();
    for task in tasks {
        let (replica, created) = task.await.unwrap();
        if created {
            winners.push(replica);
        }
    }
    assert_eq!(winners.len(), 1, "winners: {winners:?}");
    let kv = bus.kv(&bucket, 1).await.unwrap();
    assert_eq!(kv.get("contested").await.unwrap(), Some(vec![winners[0]]));
}

#[tokio::test]
async fn bad_arguments_get_typed_errors() {
    let (_server, bus, _streams) = setup().await;
    assert!(matches!(
        bus.object_store("bucket", 0).await,
        Err(BusError::Config(_))
    ));
    assert!(matches!(
        bus.kv("bucket", 6).await,
        Err(BusError::Config(_))
    ));

    let err = bus.kv("not a bucket", 1).await.unwrap_err();
    assert!(
        matches!(&err, BusError::Bucket { store: "key-value", bucket, .. } if bucket == "not a bucket"),
        "{err}"
    );

    let kv = bus.kv("keys", 1).await.unwrap();
    let err = kv.create(".bad", b"x").await.unwrap_err();
    assert!(
        matches!(&err, BusError::KeyValue { action: "create", key, .. } if key == ".bad"),
        "{err}"
    );
}
