//! Small synthetic scenes the tests build on disk: a picture with a bright square, its label map, a
//! folder of such pairs for `train-seg`, a VOC folder for CorLoc, and a 16-bit grayscale PNG.

use std::path::{Path, PathBuf};

/// A `h × w` picture with a bright square in the middle, and its label map (1 inside).
pub fn square_scene(h: u32, w: u32) -> (image::RgbImage, image::GrayImage) {
    let inside =
        move |x: u32, y: u32| (w / 4..3 * w / 4).contains(&x) && (h / 4..3 * h / 4).contains(&y);
    let rgb = image::RgbImage::from_fn(w, h, |x, y| match inside(x, y) {
        true => image::Rgb([230, (x * 3 % 64) as u8, 40]),
        false => image::Rgb([(x * 5 % 90) as u8, 120, (y * 7 % 200) as u8]),
    });
    let labels = image::GrayImage::from_fn(w, h, |x, y| image::Luma([u8::from(inside(x, y))]));
    (rgb, labels)
}

/// `root/images` and `root/labels` holding 4 square scenes `s0.png … s3.png` of 56 pixels wide
/// and 40, 48, 56, 64 high (2 classes).
pub fn square_dataset(root: &Path) -> (PathBuf, PathBuf) {
    let (images, labels) = (root.join("images"), root.join("labels"));
    std::fs::create_dir_all(&images).unwrap();
    std::fs::create_dir_all(&labels).unwrap();
    for i in 0..4u32 {
        let (rgb, label) = square_scene(40 + 8 * i, 56);
        rgb.save(images.join(format!("s{i}.png"))).unwrap();
        label.save(labels.join(format!("s{i}.png"))).unwrap();
    }
    (images, labels)
}

/// A VOC folder at `root` with two 96×64 square scenes `a` and `b`, one box each around the
/// square, listed in `ImageSets/Main/test.txt`.
pub fn voc_folder(root: &Path) {
    for dir in ["JPEGImages", "Annotations", "ImageSets/Main"] {
        std::fs::create_dir_all(root.join(dir)).unwrap();
    }
    for id in ["a", "b"] {
        square_scene(64, 96)
            .0
            .save(root.join(format!("JPEGImages/{id}.jpg")))
            .unwrap();
        let xml = format!(
            "<annotation><filename>{id}.jpg</filename><size><width>96</width><height>64</height>\
             <depth>3</depth></size><object><name>thing</name><difficult>0</difficult><bndbox>\
             <xmin>25</xmin><ymin>17</ymin><xmax>72</xmax><ymax>48</ymax></bndbox></object>\
             </annotation>"
        );
        std::fs::write(root.join(format!("Annotations/{id}.xml")), xml).unwrap();
    }
    std::fs::write(root.join("ImageSets/Main/test.txt"), "a\nb\n").unwrap();
}

/// Writes a `w × h` 16-bit grayscale PNG at `path`, a ramp of `step` per column (what PIL, HF and
/// dinoreg read clipped to 255).
pub fn gray16_png(path: &Path, w: u32, h: u32, step: u16) {
    image::ImageBuffer::<image::Luma<u16>, Vec<u16>>::from_fn(w, h, |x, _| {
        image::Luma([x as u16 * step])
    })
    .save(path)
    .expect("16-bit gray PNG");
}
