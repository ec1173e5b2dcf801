// The desk's transcripts: a word plays its recording from where it was said (the engine's word times).
"use strict";
document.addEventListener("click", function (event) {
  var word = event.target.closest ? event.target.closest("button.word") : null;
  if (!word) return;
  var audio = document.getElementById(word.dataset.audio);
  if (!audio) return;
  var start = parseFloat(word.dataset.start);
  if (isNaN(start)) return;
  document.querySelectorAll("button.word.playing").forEach(function (b) { b.classList.remove("playing"); });
  word.classList.add("playing");
  var seek = function () {
    audio.currentTime = Math.max(0, start - 0.05);
    var played = audio.play();
    if (played && played.catch) played.catch(function () {});
  };
  if (audio.readyState >= 1) seek(); else { audio.addEventListener("loadedmetadata", seek, { once: true }); audio.load(); }
});
