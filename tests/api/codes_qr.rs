//! QR images of live codes: PNG, SVG, centre logo, campaign zips — each decoded back.

use serde_json::json;

use crate::codes::create_code;
use crate::helpers::{Backend, spawn_app};
use crate::on_both_backends;

on_both_backends!(qr_images_decode_to_the_code_url);

/// Reads a QR code from an image.
fn decode(img: image::GrayImage) -> String {
    let mut prepared = rqrr::PreparedImage::prepare(img);
    let grids = prepared.detect_grids();
    assert_eq!(grids.len(), 1, "one QR code in the image");
    grids[0].decode().unwrap().1
}

/// Rasterises our SVG (one `M{x} {y}h1v1h-1z` per dark module) at 8 px per module.
fn rasterise_svg(svg: &str) -> image::GrayImage {
    let side: u32 = svg
        .split("viewBox=\"0 0 ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let path = svg.split(" d=\"").nth(1).unwrap().split('"').next().unwrap();
    let mut img = image::GrayImage::from_pixel(side * 8, side * 8, image::Luma([255]));
    for cell in path.split('M').filter(|s| !s.is_empty()) {
        let xy = cell.split('h').next().unwrap();
        let mut parts = xy.split(' ');
        let (x, y): (u32, u32) = (
            parts.next().unwrap().parse().unwrap(),
            parts.next().unwrap().parse().unwrap(),
        );
        for dy in 0..8 {
            for dx in 0..8 {
                img.put_pixel(x * 8 + dx, y * 8 + dy, image::Luma([0]));
            }
        }
    }
    img
}

async fn qr_images_decode_to_the_code_url(backend: Backend) {
    let (_env, app) = spawn_app(backend).await;
    let admin = app.admin().await;
    let ids = app.staff_ids(&admin).await;
    let (_, campaign) = app.post(&admin, "/v1/campaigns", &json!({"name": "Spring expo"})).await;
    let (_, channel) = app
        .post(
            &admin,
            "/v1/channels",
            &json!({"name": "Booth", "kind": "employee_live_code", "campaign_id": campaign["id"]}),
        )
        .await;
    let code = create_code(&app, &admin, json!({"name": "booth A", "campaign_id": campaign["id"], "channel_id": channel["id"], "members": [{"staff_id": ids["sdr1@demo.local"]}]})).await;
    let code_b = create_code(
        &app,
        &admin,
        json!({"name": "booth B", "campaign_id": campaign["id"], "members": [{"staff_id": ids["sdr2@demo.local"]}]}),
    )
    .await;
    let url = code["url"].as_str().unwrap();
    assert!(url.ends_with(&format!("/s/{}", code["code"].as_str().unwrap())));

    let png_url = format!(
        "{}?size=300&margin=2&ec=H&fg=1a237e&bg=fffde7",
        app.url(&format!("/v1/live-codes/{}/qr.png", code["id"].as_str().unwrap()))
    );
    let resp = app.client.get(&png_url).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "image/png");
    let etag = resp.headers()["etag"].to_str().unwrap().to_string();
    let png = image::load_from_memory(&resp.bytes().await.unwrap()).unwrap();
    assert!(png.width() <= 300 && png.width() >= 200);
    assert_eq!(decode(png.to_luma8()), url);
    let again = app
        .client
        .get(&png_url)
        .bearer_auth(&admin)
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);

    let resp = app
        .client
        .get(app.url(&format!("/v1/live-codes/{}/qr.svg", code["id"].as_str().unwrap())))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["content-type"], "image/svg+xml");
    assert_eq!(decode(rasterise_svg(&resp.text().await.unwrap())), url);

    let (status, problem) = app
        .get(
            &admin,
            &format!("/v1/live-codes/{}/qr.png?ec=Z&size=5", code["id"].as_str().unwrap()),
        )
        .await;
    assert_eq!(status, 422, "{problem}");

    // A centre logo: uploaded once, drawn on request, still readable (level H).
    let id = code["id"].as_str().unwrap();
    let (status, problem) = app.get(&admin, &format!("/v1/live-codes/{id}/qr.png?logo=true")).await;
    assert_eq!(status, 422, "no logo uploaded yet: {problem}");
    let mut logo_png = Vec::new();
    image::DynamicImage::ImageRgb8(image::RgbImage::from_pixel(64, 64, image::Rgb([200, 30, 30])))
        .write_to(&mut std::io::Cursor::new(&mut logo_png), image::ImageFormat::Png)
        .unwrap();
    let put = |body: Vec<u8>, content_type: &'static str| {
        app.client
            .put(app.url(&format!("/v1/live-codes/{id}/logo")))
            .bearer_auth(&admin)
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    assert_eq!(put(b"not a png".to_vec(), "image/png").await.unwrap().status(), 422);
    assert_eq!(put(logo_png.clone(), "image/jpeg").await.unwrap().status(), 415);
    assert_eq!(put(logo_png, "image/png").await.unwrap().status(), 204);
    let resp = app
        .client
        .get(app.url(&format!("/v1/live-codes/{id}/qr.png?logo=true&ec=L&size=400")))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let with_logo = image::load_from_memory(&resp.bytes().await.unwrap()).unwrap().to_rgb8();
    let centre = with_logo.get_pixel(with_logo.width() / 2, with_logo.height() / 2);
    assert_eq!(centre, &image::Rgb([200, 30, 30]), "the logo is in the centre");
    assert_eq!(decode(image::DynamicImage::ImageRgb8(with_logo).to_luma8()), url);
    let resp = app
        .client
        .get(app.url(&format!("/v1/live-codes/{id}/qr.svg?logo=true")))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert!(resp.text().await.unwrap().contains("href=\"data:image/png;base64,"));

    let resp = app
        .client
        .get(app.url(&format!("/v1/campaigns/{}/qr.zip", campaign["id"].as_str().unwrap())))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(resp.bytes().await.unwrap().to_vec())).unwrap();
    let mut names: Vec<String> = (0..zip.len())
        .map(|i| zip.by_index(i).unwrap().name().to_string())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            format!("Booth/booth_A-{}.png", code["code"].as_str().unwrap()),
            format!("no-channel/booth_B-{}.png", code_b["code"].as_str().unwrap())
        ]
    );
    let mut entry = zip.by_index(0).unwrap();
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut entry, &mut bytes).unwrap();
    let decoded = decode(image::load_from_memory(&bytes).unwrap().to_luma8());
    assert!(decoded == url || decoded == code_b["url"].as_str().unwrap());
    app.stop().await;
}
