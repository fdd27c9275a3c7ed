// Add credits: the card goes to Stripe (Stripe.js), never to us. A SetupIntent confirms the card; the server
// then charges it (a PaymentIntent); a card that asks for 3-D Secure finishes it here; the server is asked
// again how the payment stands, and the payments page shows it.
(function () {
  const form = document.getElementById("pay-form");
  if (!form) return;
  const stripe = Stripe(form.dataset.publishableKey);
  const card = stripe.elements().create("card");
  card.mount("#card-element");
  const errorBox = document.getElementById("pay-error");
  const button = document.getElementById("pay-button");
  const csrf = form.querySelector("input[name=csrfmiddlewaretoken]").value;

  function fail(message) {
    errorBox.textContent = message;
    errorBox.hidden = false;
    button.disabled = false;
    button.textContent = "Pay";
  }

  function amount() {
    const chosen = form.querySelector("input[name=preset]:checked").value;
    return chosen === "custom" ? document.getElementById("custom-amount").value : chosen;
  }

  async function post(url, body) {
    const response = await fetch(url, {
      method: "POST",
      headers: {"Content-Type": "application/json", "X-CSRFToken": csrf},
      body: JSON.stringify(body || {}),
    });
    return response.json();
  }

  form.addEventListener("submit", async function (event) {
    event.preventDefault();
    errorBox.hidden = true;
    button.disabled = true;
    button.textContent = "Paying…";
    const setup = await stripe.confirmCardSetup(form.dataset.setupSecret, {payment_method: {card: card}});
    if (setup.error) return fail(setup.error.message || "Your card was declined.");
    const paid = await post(form.dataset.payUrl, {
      amount: amount(),
      payment_method: setup.setupIntent.payment_method,
      save_card: document.getElementById("save-card").checked,
    });
    if (paid.error) return fail(paid.error.message);
    let status = paid.status;
    if (status === "requires_action") {
      const action = await stripe.confirmCardPayment(paid.client_secret);
      const refreshed = await post(form.dataset.refreshUrl.replace("PAYMENT", paid.payment_intent));
      if (refreshed.error) return fail(refreshed.error.message);
      status = refreshed.status;
      if (status !== "succeeded") {
        return fail((action.error && action.error.message) || refreshed.message || "The card's authentication failed.");
      }
    }
    if (status !== "succeeded") return fail("The payment did not go through.");
    window.location.href = form.dataset.paymentsUrl + "?paid=" + encodeURIComponent(paid.payment_intent);
  });
})();
