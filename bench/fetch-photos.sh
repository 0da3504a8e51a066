#!/usr/bin/env bash
# Real photographs for `npm run bench -- --photos .cache/photos`: Debian's wallpaper packages
# (mate-backgrounds' nature photos, the largest JPEG of each Plasma wallpaper, and the JPEGs of ukui's,
# lomiri's and gnome's backgrounds), unpacked into .cache/.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=.cache/photos
work=.cache/photo-debs
mkdir -p "$dest" "$work"
cd "$work"
if ! ls ./*.deb >/dev/null 2>&1; then
  apt-get download mate-backgrounds plasma-workspace-wallpapers ukui-wallpapers lomiri-wallpapers lomiri-wallpapers-16.04 lomiri-wallpapers-20.04 gnome-backgrounds
fi
for deb in ./*.deb; do dpkg -x "$deb" x; done
cd - >/dev/null
cp "$work"/x/usr/share/backgrounds/mate/nature/*.jpg "$dest"/
# ukui's, lomiri's and gnome's JPEGs (most of them photographs), at the top of /usr/share/backgrounds.
cp "$work"/x/usr/share/backgrounds/*.jpg "$dest"/
for d in "$work"/x/usr/share/wallpapers/*/contents/images; do
  f="$(ls -S "$d"/*.jpg 2>/dev/null | head -1 || true)"
  [ -n "$f" ] && cp "$f" "$dest/plasma-$(basename "$(dirname "$(dirname "$d")")").jpg"
done
echo "$(ls "$dest" | wc -l) photos in $dest (mate nature: real photographs; plasma: photographs and digital art)"
