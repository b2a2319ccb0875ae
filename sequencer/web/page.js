// The page at /: sends the text box's lines to POST /translate and shows the translations.
// Plain JavaScript with no build step; text is shown with textContent, never parsed as HTML.
"use strict";

const form = document.getElementById("form");
const text = document.getElementById("text");
const button = document.getElementById("translate");
const status = document.getElementById("status");
const error = document.getElementById("error");
const list = document.getElementById("translations");

function showError(message) {
  error.textContent = message;
  error.hidden = false;
  list.replaceChildren(); // no translations of other sentences beside it
}

// One list item per sentence; with n_best > 1, a nested list of the alternatives, best first.
function showTranslations(translations) {
  list.replaceChildren(
    ...translations.map((translation) => {
      const item = document.createElement("li");
      if (Array.isArray(translation)) {
        const alternatives = document.createElement("ol");
        alternatives.append(
          ...translation.map((alternative) => {
            const entry = document.createElement("li");
            entry.textContent = alternative;
            return entry;
          }),
        );
        item.append(alternatives);
      } else {
        item.textContent = translation;
      }
      return item;
    }),
  );
}

async function translate() {
  const lines = text.value.split("\n");
  if (lines.length > 1 && lines[lines.length - 1] === "") {
    lines.pop(); // the line break after the last sentence
  }
  error.hidden = true;
  button.disabled = true;
  status.textContent = "Translating…";
  const started = performance.now();
  try {
    const response = await fetch("translate", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ text: lines }),
    });
    const answer = await response.json().catch(() => ({})); // uvicorn's own errors are plain text
    const milliseconds = Math.round(performance.now() - started);
    if (!response.ok) {
      status.textContent = "";
      showError(answer.error || `The server answered ${response.status}.`);
      return;
    }
    showTranslations(answer.translations);
    const count = lines.length === 1 ? "1 sentence" : `${lines.length} sentences`;
    status.textContent = `Translated ${count} in ${milliseconds} ms.`;
  } catch (failure) {
    status.textContent = "";
    showError(`The server did not answer (${failure.message}).`);
  } finally {
    button.disabled = false;
  }
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  translate();
});

text.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
    event.preventDefault();
    form.requestSubmit();
  }
});

fetch("health")
  .then((response) => response.json())
  .then((health) => {
    document.getElementById("model").textContent = health.model;
  })
  .catch(() => {
    document.getElementById("model").textContent = "unknown (the server did not answer)";
  });
