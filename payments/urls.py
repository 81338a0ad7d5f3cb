from django.urls import path

from payments import apis

urlpatterns = [
    path("wallet", apis.WalletApi.as_view(), name="wallet"),
    path("wallet/topups", apis.TopUpListApi.as_view(), name="wallet-topups"),
    path("wallet/topups/<str:topup_id>", apis.TopUpDetailApi.as_view(), name="wallet-topup-detail"),
    path("wallet/transactions", apis.WalletTransactionsApi.as_view(), name="wallet-transactions"),
    path("payments/webhooks/<str:provider>", apis.WebhookApi.as_view(), name="payments-webhook"),
]
