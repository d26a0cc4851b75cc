//! Screenshot checks: a screenshot counts as rendered only if it decodes as
//! a PNG of a plausible size and its pixels vary (enough distinct colours
//! and luminance spread). A blank, single-colour or near-uniform image fails.

use std::collections::HashSet;
use std::path::Path;

#[derive(Debug)]
pub struct ShotStats {
    pub width: u32,
    pub height: u32,
    pub distinct_colours: usize,
    pub luma_stddev: f64,
}

/// Thresholds: a real UI with anti-aliased text has hundreds of colours; a
/// blank page has one, a page with a solid header maybe a handful.
pub const MIN_DISTINCT_COLOURS: usize = 32;
pub const MIN_LUMA_STDDEV: f64 = 4.0;
pub const MIN_SIDE: u32 = 200;

pub fn stats(png_bytes: &[u8]) -> Result<ShotStats, String> {
    let mut decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder.read_info().map_err(|e| format!("not a PNG: {e}"))?;
    let mut buf = vec![0; reader.output_buffer_size().ok_or("PNG too large")?];
    let info = reader
        .next_frame(&mut buf)
        .map_err(|e| format!("PNG frame: {e}"))?;
    let buf = &buf[..info.buffer_size()];
    let channels = match info.color_type {
        png::ColorType::Grayscale => 1,
        png::ColorType::GrayscaleAlpha => 2,
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        png::ColorType::Indexed => return Err("indexed PNG after EXPAND".into()),
    };
    let mut colours = HashSet::new();
    let (mut sum, mut sum2, mut n) = (0f64, 0f64, 0f64);
    for px in buf.chunks_exact(channels) {
        let (r, g, b) = match channels {
            1 | 2 => (px[0], px[0], px[0]),
            _ => (px[0], px[1], px[2]),
        };
        if colours.len() < 100_000 {
            colours.insert((r, g, b));
        }
        let y = 0.299 * r as f64 + 0.587 * g as f64 + 0.114 * b as f64;
        sum += y;
        sum2 += y * y;
        n += 1.0;
    }
    let mean = if n > 0.0 { sum / n } else { 0.0 };
    let var = if n > 0.0 {
        (sum2 / n - mean * mean).max(0.0)
    } else {
        0.0
    };
    Ok(ShotStats {
        width: info.width,
        height: info.height,
        distinct_colours: colours.len(),
        luma_stddev: var.sqrt(),
    })
}

/// Ok(stats) if the image is a rendered (non-blank) screenshot.
pub fn check_not_blank(png_bytes: &[u8]) -> Result<ShotStats, String> {
    let s = stats(png_bytes)?;
    if s.width < MIN_SIDE || s.height < MIN_SIDE {
        return Err(format!("screenshot too small: {s:?}"));
    }
    if s.distinct_colours < MIN_DISTINCT_COLOURS {
        return Err(format!(
            "screenshot looks blank: {} distinct colours (< {MIN_DISTINCT_COLOURS}) {s:?}",
            s.distinct_colours
        ));
    }
    if s.luma_stddev < MIN_LUMA_STDDEV {
        return Err(format!(
            "screenshot looks blank: luminance stddev {:.2} (< {MIN_LUMA_STDDEV}) {s:?}",
            s.luma_stddev
        ));
    }
    Ok(s)
}

/// Panics (fails the test) if the PNG file at `path` is blank.
pub fn assert_not_blank(path: &Path) -> ShotStats {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    match check_not_blank(&bytes) {
        Ok(s) => {
            eprintln!(
                "screenshot {}: {}x{}, {} colours, luma stddev {:.1}",
                path.display(),
                s.width,
                s.height,
                s.distinct_colours,
                s.luma_stddev
            );
            s
        }
        Err(e) => panic!("{}: {e}", path.display()),
    }
}

/// Encodes an RGB image (for the checker's own tests).
pub fn encode_rgb(width: u32, height: u32, pixel: impl Fn(u32, u32) -> [u8; 3]) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, width, height);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut w = enc.write_header().unwrap();
        let mut data = Vec::with_capacity((width * height * 3) as usize);
        for y in 0..height {
            for x in 0..width {
                data.extend_from_slice(&pixel(x, y));
            }
        }
        w.write_image_data(&data).unwrap();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_and_uniform_images_fail_varied_ones_pass() {
        let white = encode_rgb(800, 600, |_, _| [255, 255, 255]);
        assert!(check_not_blank(&white).is_err());
        let two = encode_rgb(800, 600, |x, _| if x < 400 { [0, 0, 0] } else { [255; 3] });
        assert!(check_not_blank(&two).is_err());
        assert!(check_not_blank(b"not a png").is_err());
        let tiny = encode_rgb(50, 50, |x, y| [(x * 5) as u8, (y * 5) as u8, 0]);
        assert!(check_not_blank(&tiny).is_err());
        let busy = encode_rgb(800, 600, |x, y| {
            [(x % 256) as u8, (y % 256) as u8, ((x + y) % 256) as u8]
        });
        check_not_blank(&busy).expect("a varied image passes");
    }
}
