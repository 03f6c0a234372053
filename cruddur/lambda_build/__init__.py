"""The Cognito post-confirmation Lambda on this side of AWS: building its zip and running its
handler locally. Uploading it is cruddur.aws.lambda_deploy."""
