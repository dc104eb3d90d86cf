//! QR images of a code's URL, drawn here from the module matrix so size, margin,
//! error correction and colours are exactly what was asked. PNG encoding is CPU
//! work and runs on the blocking pool; answers carry an ETag and may be cached.

use std::io::{Cursor, Write};

use actix_web::http::header::{CACHE_CONTROL, CONTENT_DISPOSITION, ETAG, IF_NONE_MATCH};
use actix_web::{HttpRequest, HttpResponse, web};
use huoke_shared::auth::{Caller, Role};
use huoke_shared::error::FieldError;
use huoke_shared::{ApiError, ApiResult, Infra};
use image::{ImageBuffer, ImageEncoder, Rgb};
use qrcode::{Color, EcLevel, QrCode};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::admin::load;
use crate::snapshot::{CODE_COLUMNS, CodeRow};

#[derive(Debug, Deserialize, Default)]
pub struct QrQuery {
    pub size: Option<u32>,
    pub margin: Option<u32>,
    pub ec: Option<String>,
    pub fg: Option<String>,
    pub bg: Option<String>,
    /// Draw the code's uploaded logo in the centre (forces error correction H).
    pub logo: Option<bool>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct QrStyle {
    pub size: u32,
    pub margin: u32,
    pub ec: EcLevel,
    pub fg: [u8; 3],
    pub bg: [u8; 3],
    pub logo: bool,
}

fn colour(field: &str, value: &Option<String>, default: [u8; 3], errors: &mut Vec<FieldError>) -> [u8; 3] {
    let Some(v) = value else { return default };
    let hex = v.trim_start_matches('#');
    match (hex.len(), u32::from_str_radix(hex, 16)) {
        (6, Ok(n)) => [(n >> 16) as u8, (n >> 8) as u8, n as u8],
        _ => {
            errors.push(FieldError::new(field, "a colour as RRGGBB hex"));
            default
        }
    }
}

impl QrQuery {
    pub fn style(&self) -> Result<QrStyle, ApiError> {
        let mut errors = Vec::new();
        let size = self.size.unwrap_or(512);
        if !(64..=4096).contains(&size) {
            errors.push(FieldError::new("size", "between 64 and 4096 pixels"));
        }
        let margin = self.margin.unwrap_or(4);
        if margin > 20 {
            errors.push(FieldError::new("margin", "at most 20 modules"));
        }
        let ec = match self.ec.as_deref().unwrap_or("M") {
            "L" | "l" => EcLevel::L,
            "M" | "m" => EcLevel::M,
            "Q" | "q" => EcLevel::Q,
            "H" | "h" => EcLevel::H,
            _ => {
                errors.push(FieldError::new("ec", "one of L, M, Q, H"));
                EcLevel::M
            }
        };
        let fg = colour("fg", &self.fg, [0, 0, 0], &mut errors);
        let bg = colour("bg", &self.bg, [255, 255, 255], &mut errors);
        let logo = self.logo.unwrap_or(false);
        // A logo hides modules; only the highest error correction reads through it.
        let ec = if logo { EcLevel::H } else { ec };
        if errors.is_empty() {
            Ok(QrStyle {
                size,
                margin,
                ec,
                fg,
                bg,
                logo,
            })
        } else {
            Err(ApiError::Validation(errors))
        }
    }
}

/// The module matrix with its quiet zone: `(side, dark?)`.
fn matrix(data: &str, style: &QrStyle) -> anyhow::Result<(usize, Vec<bool>)> {
    let code = QrCode::with_error_correction_level(data.as_bytes(), style.ec)?;
    let width = code.width();
    let colors = code.to_colors();
    let m = style.margin as usize;
    let side = width + 2 * m;
    let mut dark = vec![false; side * side];
    for y in 0..width {
        for x in 0..width {
            dark[(y + m) * side + x + m] = colors[y * width + x] == Color::Dark;
        }
    }
    Ok((side, dark))
}

fn hex(c: [u8; 3]) -> String {
    format!("#{:02x}{:02x}{:02x}", c[0], c[1], c[2])
}

/// The centre square a logo may cover, in modules: a fifth of the code's width
/// (4 % of its area, well inside what level H recovers), with a one-module frame.
fn logo_box(side: usize, margin: usize) -> (f64, f64) {
    let width = (side - 2 * margin) as f64;
    let edge = (width / 5.0).floor();
    ((side as f64 - edge) / 2.0, edge)
}

pub fn svg(data: &str, style: &QrStyle, logo_png_b64: Option<&str>) -> anyhow::Result<String> {
    let (side, dark) = matrix(data, style)?;
    let mut path = String::new();
    for y in 0..side {
        for x in 0..side {
            if dark[y * side + x] {
                path.push_str(&format!("M{x} {y}h1v1h-1z"));
            }
        }
    }
    let logo = match logo_png_b64 {
        Some(b64) => {
            let (at, edge) = logo_box(side, style.margin as usize);
            format!(
                "<rect x=\"{f}\" y=\"{f}\" width=\"{fe}\" height=\"{fe}\" fill=\"{bg}\"/><image x=\"{at}\" y=\"{at}\" width=\"{edge}\" height=\"{edge}\" href=\"data:image/png;base64,{b64}\"/>",
                f = at - 1.0,
                fe = edge + 2.0,
                bg = hex(style.bg),
            )
        }
        None => String::new(),
    };
    Ok(format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{s}\" height=\"{s}\" viewBox=\"0 0 {side} {side}\" shape-rendering=\"crispEdges\"><rect width=\"{side}\" height=\"{side}\" fill=\"{bg}\"/><path fill=\"{fg}\" d=\"{path}\"/>{logo}</svg>\n",
        s = style.size,
        bg = hex(style.bg),
        fg = hex(style.fg),
    ))
}

/// A PNG of whole pixels per module: the image is the largest multiple of the
/// module count not above `size` (at least one pixel per module).
pub fn png(data: &str, style: &QrStyle, logo: Option<&image::DynamicImage>) -> anyhow::Result<Vec<u8>> {
    let (side, dark) = matrix(data, style)?;
    let scale = (style.size as usize / side).max(1);
    let px = (side * scale) as u32;
    let mut img = ImageBuffer::from_fn(px, px, |x, y| {
        let (mx, my) = (x as usize / scale, y as usize / scale);
        Rgb(if dark[my * side + mx] { style.fg } else { style.bg })
    });
    if let Some(logo) = logo {
        let (at, edge) = logo_box(side, style.margin as usize);
        let frame = ((at - 1.0) * scale as f64) as u32;
        let frame_edge = ((edge + 2.0) * scale as f64) as u32;
        for y in frame..frame + frame_edge {
            for x in frame..frame + frame_edge {
                img.put_pixel(x, y, Rgb(style.bg));
            }
        }
        let edge_px = (edge * scale as f64) as u32;
        let fitted = logo
            .resize(edge_px, edge_px, image::imageops::FilterType::Triangle)
            .to_rgba8();
        let (ox, oy) = (
            (at * scale as f64) as u32 + (edge_px - fitted.width()) / 2,
            (at * scale as f64) as u32 + (edge_px - fitted.height()) / 2,
        );
        for (x, y, p) in fitted.enumerate_pixels() {
            // Blend over the background so transparent logos look right.
            let a = p[3] as u32;
            let blend = |c: u8, b: u8| ((c as u32 * a + b as u32 * (255 - a)) / 255) as u8;
            img.put_pixel(
                ox + x,
                oy + y,
                Rgb([
                    blend(p[0], style.bg[0]),
                    blend(p[1], style.bg[1]),
                    blend(p[2], style.bg[2]),
                ]),
            );
        }
    }
    let mut out = Vec::new();
    image::codecs::png::PngEncoder::new(&mut out).write_image(img.as_raw(), px, px, image::ExtendedColorType::Rgb8)?;
    Ok(out)
}

fn etag(url: &str, style: &QrStyle, format: &str) -> String {
    let digest = Sha256::digest(format!("{url}|{style:?}|{format}").as_bytes());
    format!("\"{}\"", hex::encode(&digest[..12]))
}

pub async fn image(
    req: HttpRequest,
    infra: web::Data<Infra>,
    caller: Caller,
    path: web::Path<(String, String)>,
    query: web::Query<QrQuery>,
) -> ApiResult<HttpResponse> {
    caller.require_any(&[Role::Marketer, Role::Manager])?;
    let (id, format) = path.into_inner();
    if format != "png" && format != "svg" {
        return Err(ApiError::not_found("image format"));
    }
    let style = query.style()?;
    let row = load(&infra, &caller.tenant_id, &id).await?;
    let url = format!("{}/s/{}", infra.settings.public_base(), row.code);
    let logo_version = if style.logo {
        row.updated_at.to_string()
    } else {
        String::new()
    };
    let tag = etag(&format!("{url}|{logo_version}"), &style, &format);
    if req.headers().get(IF_NONE_MATCH).and_then(|v| v.to_str().ok()) == Some(tag.as_str()) {
        return Ok(HttpResponse::NotModified().insert_header((ETAG, tag)).finish());
    }
    let logo = if style.logo {
        Some(load_logo(&infra, &caller.tenant_id, &row.id).await?)
    } else {
        None
    };
    let (content_type, body) = if format == "svg" {
        ("image/svg+xml", svg(&url, &style, logo.as_deref())?.into_bytes())
    } else {
        let _slot = render_slot().await?;
        let bytes = web::block(move || -> anyhow::Result<Vec<u8>> {
            let decoded = logo.map(|b64| decode_logo(&b64)).transpose()?;
            png(&url, &style, decoded.as_ref())
        })
        .await
        .map_err(|e| anyhow::anyhow!("rendering: {e}"))??;
        ("image/png", bytes)
    };
    Ok(HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((ETAG, tag))
        // The image of a code never changes (the code is fixed); only access is private.
        .insert_header((CACHE_CONTROL, "private, max-age=31536000, immutable"))
        .body(body))
}

const MAX_LOGO_BYTES: usize = 200 * 1024;
const MAX_LOGO_SIDE: u32 = 2048;

/// Images rendered at once per process: a 4096-pixel code or a campaign's zip is
/// CPU and memory for seconds; beyond this, requests wait (then get a 503).
static RENDERING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);
/// Codes in one campaign zip, and the pixels all its images may add up to.
const MAX_ZIP_CODES: usize = 1000;
const MAX_ZIP_PIXELS: u64 = 1 << 28;

async fn render_slot() -> ApiResult<tokio::sync::SemaphorePermit<'static>> {
    let busy = || ApiError::Unavailable("busy rendering other images; try again shortly".into());
    tokio::time::timeout(std::time::Duration::from_secs(10), RENDERING.acquire())
        .await
        .map_err(|_| busy())?
        .map_err(|_| busy())
}

/// A PNG's size as its header states it — read before anything is decoded, so a
/// small file that claims a huge image (a decompression bomb) costs nothing.
fn png_dimensions(bytes: &[u8]) -> Option<(u32, u32)> {
    image::ImageReader::with_format(Cursor::new(bytes), image::ImageFormat::Png)
        .into_dimensions()
        .ok()
}

/// Decodes a logo of at most [`MAX_LOGO_SIDE`] pixels a side, with the decoder's
/// memory bounded too.
fn decode_png_logo(bytes: &[u8]) -> anyhow::Result<image::DynamicImage> {
    let (w, h) = png_dimensions(bytes).ok_or_else(|| anyhow::anyhow!("not a PNG"))?;
    anyhow::ensure!(w <= MAX_LOGO_SIDE && h <= MAX_LOGO_SIDE, "logo of {w}×{h} pixels");
    let mut reader = image::ImageReader::with_format(Cursor::new(bytes), image::ImageFormat::Png);
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_LOGO_SIDE);
    limits.max_image_height = Some(MAX_LOGO_SIDE);
    limits.max_alloc = Some(64 * 1024 * 1024);
    reader.limits(limits);
    Ok(reader.decode()?)
}

fn decode_logo(b64: &str) -> anyhow::Result<image::DynamicImage> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD.decode(b64)?;
    decode_png_logo(&bytes)
}

async fn load_logo(infra: &Infra, tenant_id: &str, code_id: &str) -> ApiResult<String> {
    let logo: Option<Option<String>> =
        sqlx::query_scalar("SELECT logo_png FROM live_codes WHERE tenant_id = $1 AND id = $2")
            .bind(tenant_id)
            .bind(code_id)
            .fetch_optional(infra.store.pool())
            .await?;
    logo.flatten()
        .ok_or_else(|| ApiError::invalid("logo", "upload a logo first: PUT /v1/live-codes/{id}/logo"))
}

/// `PUT /v1/live-codes/{id}/logo` with a PNG body (at most 200 KB): the logo drawn
/// in the centre of the code's images when they are asked for with `logo=true`.
pub async fn put_logo(
    req: HttpRequest,
    infra: web::Data<Infra>,
    caller: Caller,
    id: web::Path<String>,
    mut payload: web::Payload,
) -> ApiResult<HttpResponse> {
    use base64::Engine;
    caller.require_any(&[Role::Marketer, Role::Manager])?;
    let row = load(&infra, &caller.tenant_id, &id).await?;
    let content_type = req
        .headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if content_type != "image/png" {
        return Err(ApiError::UnsupportedMediaType("send the logo as image/png".into()));
    }
    let body = huoke_shared::http::read_limited(&mut payload, MAX_LOGO_BYTES).await?;
    let (width, height) = png_dimensions(&body).ok_or_else(|| ApiError::invalid("body", "not a readable PNG image"))?;
    if width > MAX_LOGO_SIDE || height > MAX_LOGO_SIDE {
        return Err(ApiError::invalid("body", "at most 2048×2048 pixels"));
    }
    let bytes = body.to_vec();
    let _slot = render_slot().await?;
    let valid = web::block(move || decode_png_logo(&bytes).map(|_| ()))
        .await
        .map_err(|e| anyhow::anyhow!("decoding: {e}"))?;
    valid.map_err(|_| ApiError::invalid("body", "not a readable PNG image"))?;
    let mut tx = infra.store.begin().await?;
    sqlx::query("UPDATE live_codes SET logo_png = $1, updated_at = $2 WHERE tenant_id = $3 AND id = $4")
        .bind(base64::engine::general_purpose::STANDARD.encode(&body))
        .bind(huoke_shared::clock::now_ms())
        .bind(&caller.tenant_id)
        .bind(&row.id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(HttpResponse::NoContent().finish())
}

fn file_part(s: &str) -> String {
    let cleaned: String = s
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(60)
        .collect();
    if cleaned.is_empty() { "_".into() } else { cleaned }
}

/// `GET /v1/campaigns/{id}/qr.zip`: every code of a campaign as PNG, in a folder per
/// channel, named by code name and code.
pub async fn campaign_zip(
    infra: web::Data<Infra>,
    caller: Caller,
    id: web::Path<String>,
    query: web::Query<QrQuery>,
) -> ApiResult<HttpResponse> {
    caller.require_any(&[Role::Marketer, Role::Manager])?;
    let style = query.style()?;
    let campaign: Option<String> = sqlx::query_scalar("SELECT name FROM campaigns WHERE tenant_id = $1 AND id = $2")
        .bind(&caller.tenant_id)
        .bind(id.as_str())
        .fetch_optional(infra.store.pool())
        .await?;
    let campaign = campaign.ok_or_else(|| ApiError::not_found("campaign"))?;
    let rows: Vec<CodeRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {CODE_COLUMNS} FROM live_codes WHERE tenant_id = $1 AND campaign_id = $2 AND deleted_at IS NULL ORDER BY id"
    )))
    .bind(&caller.tenant_id)
    .bind(id.as_str())
    .fetch_all(infra.store.pool())
    .await?;
    let channels: Vec<(String, String)> = sqlx::query_as("SELECT id, name FROM channels WHERE tenant_id = $1")
        .bind(&caller.tenant_id)
        .fetch_all(infra.store.pool())
        .await?;
    let base = infra.settings.public_base();
    let entries: Vec<(String, String)> = rows
        .iter()
        .map(|r| {
            let channel = r
                .channel_id
                .as_ref()
                .and_then(|c| channels.iter().find(|(id, _)| id == c))
                .map(|(_, n)| n.as_str())
                .unwrap_or("no-channel");
            (
                format!("{}/{}-{}.png", file_part(channel), file_part(&r.name), r.code),
                format!("{base}/s/{}", r.code),
            )
        })
        .collect();
    let pixels = (entries.len() as u64).saturating_mul(u64::from(style.size).pow(2));
    if entries.len() > MAX_ZIP_CODES || pixels > MAX_ZIP_PIXELS {
        return Err(ApiError::invalid(
            "size",
            format!(
                "{} codes at {} pixels is too much for one zip; ask for a smaller size (each code's image is also at /v1/live-codes/{{id}}/qr.png)",
                entries.len(),
                style.size
            ),
        ));
    }
    let _slot = render_slot().await?;
    let bytes = web::block(move || -> anyhow::Result<Vec<u8>> {
        let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
        // PNGs are already compressed: store them as they are.
        let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
        for (name, url) in entries {
            zip.start_file(name, options)?;
            zip.write_all(&png(&url, &style, None)?)?;
        }
        Ok(zip.finish()?.into_inner())
    })
    .await
    .map_err(|e| anyhow::anyhow!("zipping: {e}"))??;
    Ok(HttpResponse::Ok()
        .content_type("application/zip")
        .insert_header((
            CONTENT_DISPOSITION,
            format!("attachment; filename=\"{}-qr.zip\"", file_part(&campaign)),
        ))
        .body(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn style() -> QrStyle {
        QrQuery::default().style().unwrap()
    }

    #[test]
    fn query_is_checked() {
        assert!(
            QrQuery {
                size: Some(10),
                ..Default::default()
            }
            .style()
            .is_err()
        );
        assert!(
            QrQuery {
                ec: Some("Z".into()),
                ..Default::default()
            }
            .style()
            .is_err()
        );
        assert!(
            QrQuery {
                fg: Some("red".into()),
                ..Default::default()
            }
            .style()
            .is_err()
        );
        assert_eq!(
            QrQuery {
                fg: Some("#ff8000".into()),
                ..Default::default()
            }
            .style()
            .unwrap()
            .fg,
            [255, 128, 0]
        );
    }

    #[test]
    fn margins_add_quiet_zone() {
        let (side0, _) = matrix("https://x.example/s/abcdefghij", &QrStyle { margin: 0, ..style() }).unwrap();
        let (side4, dark) = matrix("https://x.example/s/abcdefghij", &style()).unwrap();
        assert_eq!(side4, side0 + 8);
        assert!(!dark[..side4 * 4].iter().any(|d| *d), "the top margin is light");
    }

    #[test]
    fn png_is_png_and_svg_is_svg() {
        let bytes = png("https://x.example/s/abc", &style(), None).unwrap();
        assert_eq!(&bytes[1..4], b"PNG");
        let s = svg("https://x.example/s/abc", &style(), None).unwrap();
        assert!(s.contains("<svg") && s.contains("width=\"512\""));
    }

    #[test]
    fn a_logo_forces_level_h_and_sits_in_the_middle() {
        let with_logo = QrQuery {
            ec: Some("L".into()),
            logo: Some(true),
            ..Default::default()
        }
        .style()
        .unwrap();
        assert_eq!(with_logo.ec, EcLevel::H);
        let (at, edge) = logo_box(37, 4);
        // 29 modules wide: a 5-module logo square, centred in the 37-module image.
        assert_eq!((at, edge), (16.0, 5.0));
    }

    #[test]
    fn file_names_are_safe() {
        assert_eq!(file_part("../春季 展会"), "___春季_展会");
    }
}
