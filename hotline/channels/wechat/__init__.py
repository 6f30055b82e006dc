"""The WeChat official account: /wechat push endpoint and the customer-service message API."""
